import { invalidArg } from "../errors.js";

/**
 * Refuses a model name that is not one plain directory name of a
 * repository ('/', '\', NUL, '.' or '..'), before any file-system call can
 * use it to reach outside the repository.
 */
export function checkModelName(name: string): void {
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name)) {
    throw invalidArg(`invalid model name '${name.replace(/\0/g, "\\0")}': a model name is one directory of the repository, without '/', '\\', NUL, and not '.' or '..'`);
  }
}

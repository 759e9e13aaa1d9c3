/**
 * Module-loader hooks a `js` instance's worker registers when its model is a
 * `.ts` file: every `.ts` module it imports (the model and its local
 * helpers) is compiled with the `typescript` package as it loads. Because the
 * module keeps its own file: URL, it resolves packages from the repository's
 * `node_modules` and local `./x.ts` imports as any module would; a data: URL
 * could resolve neither.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

type Ts = typeof import("typescript");
let ts: Ts | undefined;

interface LoadResult {
  format?: string;
  source?: string | ArrayBuffer | Uint8Array;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context: object) => Promise<LoadResult>;

async function compiler(): Promise<Ts> {
  try {
    ts ??= (await import("typescript")).default;
    return ts;
  } catch {
    throw new Error("a model.ts needs the 'typescript' package (npm install typescript), or compile it to model.js");
  }
}

/** Node's `load` hook: `.ts` files become ES modules; everything else loads as usual. */
export async function load(url: string, context: object, nextLoad: NextLoad): Promise<LoadResult> {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
  const ts = await compiler();
  const file = fileURLToPath(url);
  const out = ts.transpileModule(await readFile(file, "utf8"), {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) throw new Error(errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("; "));
  return { format: "module", source: out.outputText, shortCircuit: true };
}

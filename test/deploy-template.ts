// A renderer for the part of Go's text/template and Helm's functions that deploy/helm/tritium
// uses, so the chart can be rendered and checked with no helm binary (none can be installed
// here). It is stricter than Helm where that catches mistakes: a missing key, an unknown
// function or a misplaced `end` is an error, never an empty string.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import YAML from "yaml";

type Value = unknown;

// ---- lexing: text and {{ actions }} ----

interface Action { kind: "action"; body: string; pos: number }
interface Text { kind: "text"; text: string }

function lex(src: string): (Action | Text)[] {
  const out: (Action | Text)[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    let text = src.slice(i, open < 0 ? src.length : open);
    if (trimNext) text = text.replace(/^\s+/, "");
    if (open < 0) {
      out.push({ kind: "text", text });
      break;
    }
    const trimPrev = src.startsWith("{{- ", open) || src.startsWith("{{-\n", open);
    if (trimPrev) text = text.replace(/\s+$/, "");
    out.push({ kind: "text", text });
    const close = src.indexOf("}}", open + 2);
    if (close < 0) throw new Error(`unclosed action at ${open}`);
    let body = src.slice(open + 2, close);
    trimNext = / -$|\n-$/.test(body) || body.endsWith(" -");
    if (trimPrev) body = body.slice(1);
    if (trimNext) body = body.slice(0, -1);
    out.push({ kind: "action", body: body.trim(), pos: open });
    i = close + 2;
  }
  return out;
}

// ---- parsing actions into a tree ----

type Node =
  | { kind: "text"; text: string }
  | { kind: "print"; pipe: Pipe }
  | { kind: "if" | "with"; pipe: Pipe; then: Node[]; else: Node[] }
  | { kind: "range"; pipe: Pipe; vars: string[]; body: Node[]; else: Node[] };

interface Pipe { decl?: string; cmds: Term[][] }
type Term =
  | { t: "field"; base: "." | "$" | string; path: string[] }
  | { t: "lit"; v: Value }
  | { t: "fn"; name: string }
  | { t: "sub"; pipe: Pipe };

function tokenize(s: string): string[] {
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|:=|[()|,=]|[^\s()|,"`=]+)/gy;
  const toks: string[] = [];
  let end = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    toks.push(m[1]);
    end = re.lastIndex;
  }
  if (s.slice(end).trim()) throw new Error(`cannot read "${s}"`);
  return toks;
}

function parsePipe(toks: string[]): Pipe {
  let decl: string | undefined;
  if (toks.length > 2 && toks[0].startsWith("$") && toks[1] === ":=") {
    decl = toks[0];
    toks = toks.slice(2);
  }
  const cmds: Term[][] = [[]];
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i];
    if (tok === "|") {
      cmds.push([]);
      continue;
    }
    if (tok === "(") {
      let depth = 1;
      let j = i + 1;
      for (; j < toks.length && depth; j++) depth += toks[j] === "(" ? 1 : toks[j] === ")" ? -1 : 0;
      if (depth) throw new Error(`unbalanced ( in ${toks.join(" ")}`);
      cmds[cmds.length - 1].push({ t: "sub", pipe: parsePipe(toks.slice(i + 1, j - 1)) });
      i = j - 1;
      continue;
    }
    cmds[cmds.length - 1].push(term(tok));
  }
  if (cmds.some((c) => c.length === 0)) throw new Error(`empty command in "${toks.join(" ")}"`);
  return { decl, cmds };
}

function term(tok: string): Term {
  if (tok.startsWith('"')) return { t: "lit", v: JSON.parse(tok) };
  if (tok.startsWith("`")) return { t: "lit", v: tok.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(tok)) return { t: "lit", v: Number(tok) };
  if (tok === "true" || tok === "false") return { t: "lit", v: tok === "true" };
  if (tok === "nil") return { t: "lit", v: null };
  if (tok === ".") return { t: "field", base: ".", path: [] };
  if (tok.startsWith(".")) return { t: "field", base: ".", path: tok.slice(1).split(".") };
  if (tok.startsWith("$")) {
    const [base, ...rest] = tok.split(".");
    return { t: "field", base, path: rest };
  }
  if (/^[A-Za-z_]\w*$/.test(tok)) return { t: "fn", name: tok };
  throw new Error(`unexpected "${tok}"`);
}

function parse(items: (Action | Text)[], defines: Map<string, Node[]>, file: string): Node[] {
  let i = 0;
  const block = (ends: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (i < items.length) {
      const it = items[i++];
      if (it.kind === "text") {
        if (it.text) nodes.push({ kind: "text", text: it.text });
        continue;
      }
      const body = it.body;
      if (body.startsWith("/*")) continue;
      const [word] = body.split(/\s+/, 1);
      if (word === "end" || word === "else") {
        if (!ends.includes(word)) throw new Error(`${file}: unexpected {{${body}}} at ${it.pos}`);
        if (word === "else" && body !== "else") {
          i--; // `else if`: the else branch is one nested if that shares this end
          items[i] = { kind: "action", body: body.slice(5).trim(), pos: it.pos };
          return { nodes, end: "else-if" };
        }
        return { nodes, end: word };
      }
      if (word === "if" || word === "with") {
        const pipe = parsePipe(tokenize(body.slice(word.length)));
        const a = block(["else", "end"]);
        let elseNodes: Node[] = [];
        if (a.end === "else") elseNodes = block(["end"]).nodes;
        else if (a.end === "else-if") elseNodes = [parseElseIf()];
        nodes.push({ kind: word, pipe, then: a.nodes, else: elseNodes });
      } else if (word === "range") {
        let rest = body.slice(5).trim();
        let vars: string[] = [];
        const m = /^(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.*)$/s.exec(rest);
        if (m) {
          vars = m[2] ? [m[1], m[2]] : [m[1]];
          rest = m[3];
        }
        const a = block(["else", "end"]);
        const elseNodes = a.end === "else" ? block(["end"]).nodes : [];
        nodes.push({ kind: "range", pipe: parsePipe(tokenize(rest)), vars, body: a.nodes, else: elseNodes });
      } else if (word === "define") {
        const name = JSON.parse(body.slice(6).trim());
        defines.set(name, block(["end"]).nodes);
      } else {
        nodes.push({ kind: "print", pipe: parsePipe(tokenize(body)) });
      }
    }
    if (ends.length) throw new Error(`${file}: missing {{end}}`);
    return { nodes, end: "" };
  };
  const parseElseIf = (): Node => {
    const it = items[i++] as Action;
    const pipe = parsePipe(tokenize(it.body.slice(2)));
    const a = block(["else", "end"]);
    let elseNodes: Node[] = [];
    if (a.end === "else") elseNodes = block(["end"]).nodes;
    else if (a.end === "else-if") elseNodes = [parseElseIf()];
    return { kind: "if", pipe, then: a.nodes, else: elseNodes };
  };
  return block([]).nodes;
}

// ---- evaluation ----

function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return true;
}

function str(v: Value): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function toYaml(v: Value): string {
  if (v === null || v === undefined) return "null";
  return YAML.stringify(v, { lineWidth: 0, sortMapEntries: true }).replace(/\n$/, "");
}

function indent(n: number, s: string): string {
  const pad = " ".repeat(n);
  return s.split("\n").map((l) => pad + l).join("\n");
}

interface Scope { dot: Value; root: Value; vars: Map<string, Value> }

export class Chart {
  readonly defines = new Map<string, Node[]>();
  private readonly templates = new Map<string, Node[]>();
  readonly chart: Record<string, Value>;
  readonly defaultValues: Record<string, Value>;

  constructor(readonly dir: string) {
    this.chart = YAML.parse(readFileSync(path.join(dir, "Chart.yaml"), "utf8"));
    this.defaultValues = YAML.parse(readFileSync(path.join(dir, "values.yaml"), "utf8"));
    for (const f of readdirSync(path.join(dir, "templates")).sort()) {
      const src = readFileSync(path.join(dir, "templates", f), "utf8");
      this.templates.set(f, parse(lex(src), this.defines, f));
    }
  }

  /** Each template's text, as `helm template` would write it (helpers files excluded). */
  render(overrides: Record<string, Value> = {}, release = { Name: "demo", Namespace: "models" }): Map<string, string> {
    const values = merge(structuredClone(this.defaultValues), overrides);
    const c = this.chart as { name: string; version: string; appVersion: string };
    const root = {
      Values: values,
      Release: { ...release, Service: "Helm", IsInstall: true },
      Chart: { Name: c.name, Version: c.version, AppVersion: c.appVersion },
    };
    const out = new Map<string, string>();
    for (const [name, nodes] of this.templates) {
      if (name.startsWith("_")) continue;
      out.set(name, this.exec(nodes, { dot: root, root, vars: new Map([["$", root]]) }));
    }
    return out;
  }

  /** The Kubernetes objects of every YAML template. */
  objects(overrides: Record<string, Value> = {}): Record<string, any>[] {
    const docs: Record<string, any>[] = [];
    for (const [name, text] of this.render(overrides)) {
      if (!name.endsWith(".yaml")) continue;
      for (const doc of YAML.parseAllDocuments(text)) {
        if (doc.errors.length) throw new Error(`${name}: ${doc.errors[0].message}\n${text}`);
        const obj = doc.toJS();
        if (obj !== null) docs.push(obj);
      }
    }
    return docs;
  }

  private exec(nodes: Node[], scope: Scope): string {
    let out = "";
    for (const n of nodes) {
      switch (n.kind) {
        case "text":
          out += n.text;
          break;
        case "print": {
          const v = this.pipe(n.pipe, scope);
          if (!n.pipe.decl) out += str(v);
          break;
        }
        case "if": {
          const v = this.pipe(n.pipe, scope);
          out += this.exec(truthy(v) ? n.then : n.else, scope);
          break;
        }
        case "with": {
          const v = this.pipe(n.pipe, scope);
          out += truthy(v) ? this.exec(n.then, { ...scope, dot: v }) : this.exec(n.else, scope);
          break;
        }
        case "range": {
          const v = this.pipe(n.pipe, scope);
          const entries: [Value, Value][] = Array.isArray(v)
            ? v.map((x, k) => [k, x])
            : v && typeof v === "object"
              ? Object.keys(v).sort().map((k) => [k, (v as Record<string, Value>)[k]])
              : [];
          if (!entries.length) out += this.exec(n.else, scope);
          for (const [k, x] of entries) {
            const vars = new Map(scope.vars);
            if (n.vars.length === 1) vars.set(n.vars[0], x);
            if (n.vars.length === 2) {
              vars.set(n.vars[0], k);
              vars.set(n.vars[1], x);
            }
            out += this.exec(n.body, { ...scope, dot: x, vars });
          }
          break;
        }
      }
    }
    return out;
  }

  private pipe(p: Pipe, scope: Scope): Value {
    let prev: Value[] = [];
    for (const cmd of p.cmds) prev = [this.command(cmd, prev, scope)];
    if (p.decl) scope.vars.set(p.decl, prev[0]);
    return prev[0];
  }

  private command(cmd: Term[], piped: Value[], scope: Scope): Value {
    const [head, ...rest] = cmd;
    if (head.t !== "fn") {
      if (rest.length || piped.length) throw new Error("only functions take arguments");
      return this.value(head, scope);
    }
    const args = [...rest.map((t) => this.value(t, scope)), ...piped];
    return this.call(head.name, args);
  }

  private value(t: Term, scope: Scope): Value {
    switch (t.t) {
      case "lit":
        return t.v;
      case "sub":
        return this.pipe(t.pipe, scope);
      case "fn":
        return this.call(t.name, []);
      case "field": {
        let v: Value;
        if (t.base === ".") v = scope.dot;
        else if (scope.vars.has(t.base)) v = scope.vars.get(t.base);
        else throw new Error(`undefined variable ${t.base}`);
        for (const key of t.path) {
          if (v === null || typeof v !== "object" || !(key in (v as object))) {
            throw new Error(`no key "${key}" in ${t.base}.${t.path.join(".")}`);
          }
          v = (v as Record<string, Value>)[key];
        }
        return v;
      }
    }
  }

  private call(name: string, a: Value[]): Value {
    const num = (v: Value) => Number(v);
    switch (name) {
      case "include": {
        const body = this.defines.get(a[0] as string);
        if (!body) throw new Error(`no template "${a[0]}"`);
        return this.exec(body, { dot: a[1], root: a[1], vars: new Map([["$", a[1]]]) });
      }
      case "toYaml": return toYaml(a[0]);
      case "indent": return indent(num(a[0]), str(a[1]));
      case "nindent": return "\n" + indent(num(a[0]), str(a[1]));
      case "quote": return JSON.stringify(str(a[0]));
      case "default": return truthy(a[1]) ? a[1] : a[0];
      case "required": if (!truthy(a[1])) throw new Error(String(a[0])); return a[1];
      case "printf": {
        let k = 1;
        return str(a[0]).replace(/%[sdv]/g, () => str(a[k++]));
      }
      case "trunc": return str(a[1]).slice(0, num(a[0]));
      case "trimSuffix": { const s = str(a[1]); const x = str(a[0]); return s.endsWith(x) ? s.slice(0, -x.length) : s; }
      case "replace": return str(a[2]).split(str(a[0])).join(str(a[1]));
      case "contains": return str(a[1]).includes(str(a[0]));
      case "hasPrefix": return str(a[1]).startsWith(str(a[0]));
      case "toString": return str(a[0]);
      case "sha256sum": return createHash("sha256").update(str(a[0])).digest("hex");
      case "int": return Math.trunc(num(a[0]));
      case "add": return a.reduce((s: number, x) => s + num(x), 0);
      case "eq": return a.slice(1).some((x) => x === a[0]);
      case "ne": return a[0] !== a[1];
      case "gt": return num(a[0]) > num(a[1]);
      case "lt": return num(a[0]) < num(a[1]);
      case "not": return !truthy(a[0]);
      case "and": return a.find((x) => !truthy(x)) ?? a[a.length - 1];
      case "or": return a.find((x) => truthy(x)) ?? a[a.length - 1];
      case "empty": return !truthy(a[0]);
      case "list": return a;
      case "dict": {
        const d: Record<string, Value> = {};
        for (let k = 0; k < a.length; k += 2) d[str(a[k])] = a[k + 1];
        return d;
      }
      default: throw new Error(`function "${name}" not defined`);
    }
  }
}

/** Helm's values merge: maps merge key by key, anything else replaces. */
export function merge(base: Record<string, Value>, over: Record<string, Value>): Record<string, Value> {
  for (const [k, v] of Object.entries(over)) {
    const b = base[k];
    if (v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b)) {
      merge(b as Record<string, Value>, v as Record<string, Value>);
    } else {
      base[k] = v;
    }
  }
  return base;
}

/** One object to check against a TypeScript type that a package declares. */
export interface TypedObject { module: string; type: string; value: unknown; label: string }

/**
 * The schemas' validators accept fields they do not know (as Kubernetes' non-strict decoding
 * does), so a misspelt field would pass them. TypeScript's excess-property check on an object
 * literal does not: each object is compiled as a literal of its kubernetes-models type, and every
 * diagnostic is returned with the object's label.
 */
export function typeCheck(objects: readonly TypedObject[], root: string): { label: string; message: string }[] {
  const file = path.join(root, "test", "__rendered_manifests__.ts");
  const lines: string[] = [];
  objects.forEach((o, i) => {
    lines.push(`import type { ${o.type} as T${i} } from ${JSON.stringify(o.module)};`);
  });
  const firstObjectLine = lines.length;
  objects.forEach((o, i) => lines.push(`export const o${i}: T${i} = ${JSON.stringify(o.value)};`));
  const text = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, text, lang) : getSourceFile(f, lang, ...rest));
  host.fileExists = (f) => f === file || fileExists(f);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const label = line >= firstObjectLine ? objects[line - firstObjectLine].label : "(imports)";
    return { label, message: ts.flattenDiagnosticMessageText(d.messageText, "\n") };
  });
}

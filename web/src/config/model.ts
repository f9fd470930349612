// A board configuration as the browser edits it: the `content` map of the document, one
// entry per setting (docs/crdt-layout.md), so that two people changing two settings at once
// both keep theirs. Pure helpers for the form, the expert KEY=value view and the checks.
import * as Y from 'yjs';

export type Value = string | number | boolean;
export type Config = Record<string, Value>;

/** The part of a JSON Schema the screens read. */
export interface FieldSchema {
  title?: string;
  description?: string;
  type?: string;
  enum?: Value[];
  default?: Value;
  oneOf?: { const: Value; title?: string; description?: string; 'x-support'?: string }[];
}
export interface BuildSchema {
  $id?: string;
  required?: string[];
  properties: Record<string, FieldSchema>;
  allOf?: unknown[];
}

/** The map a configuration lives in (the same name as the server's). */
export const CONTENT = 'content';

/** Whether `key` is a setting name Armbian reads (quire-collab's build_config::is_key). */
export function isKey(key: string): boolean {
  return /^[A-Z_][A-Z0-9_]{0,63}$/.test(key);
}

/** The configuration the map holds now. */
export function read(map: Y.Map<unknown>): Config {
  const out: Config = {};
  map.forEach((v, k) => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  });
  return out;
}

/** Sets one setting, or removes it (`undefined` or an empty string), in the person's name. */
export function setField(doc: Y.Doc, key: string, value: Value | undefined, origin: unknown) {
  const map = doc.getMap(CONTENT);
  doc.transact(() => {
    if (value === undefined || value === '') map.delete(key);
    else if (map.get(key) !== value) map.set(key, value);
  }, origin);
}

/** What turns `before` into `after`, setting by setting. */
export function changes(before: Config, after: Config): { set: Config; remove: string[] } {
  const set: Config = {};
  for (const [k, v] of Object.entries(after)) if (before[k] !== v) set[k] = v;
  const remove = Object.keys(before).filter((k) => !(k in after));
  return { set, remove };
}

/** Writes only what differs from the map's content, as one change. */
export function apply(doc: Y.Doc, after: Config, origin: unknown) {
  const map = doc.getMap(CONTENT);
  const { set, remove } = changes(read(map), after);
  if (!remove.length && !Object.keys(set).length) return;
  doc.transact(() => {
    for (const k of remove) map.delete(k);
    for (const [k, v] of Object.entries(set)) map.set(k, v);
  }, origin);
}

/** The settings in groups, as Armbian's menu asks for them (the form's order and the lines'). */
export const GROUPS: { title: string; fields: string[] }[] = [
  { title: 'Board and release', fields: ['BOARD', 'BRANCH', 'RELEASE'] },
  { title: 'Image', fields: ['BUILD_MINIMAL', 'BUILD_DESKTOP', 'DESKTOP_ENVIRONMENT', 'KERNEL_CONFIGURE'] },
  { title: 'Storage and outputs', fields: ['ROOTFS_TYPE', 'FIXED_IMAGE_SIZE', 'IMAGE_PARTITION_TABLE', 'COMPRESS_OUTPUTIMAGE'] },
  { title: 'System', fields: ['NETWORKING_STACK', 'EXTRAWIFI', 'INSTALL_HEADERS', 'BSPFREEZE'] },
];

/** Settings in the order a person reads them: the groups', the schema's others, then the rest
 * by name. */
export function ordered(config: Config, schema?: BuildSchema): [string, Value][] {
  const grouped = GROUPS.flatMap((g) => g.fields);
  const known = [...grouped, ...Object.keys(schema?.properties ?? {}).filter((k) => !grouped.includes(k))];
  const rank = (k: string) => {
    const i = known.indexOf(k);
    return i < 0 ? known.length : i;
  };
  return Object.entries(config).sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** The expert view: one `KEY=value` line per setting, as `./compile.sh build` takes them. */
export function toLines(config: Config, schema?: BuildSchema): string {
  return ordered(config, schema)
    .map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)}`)
    .join('\n');
}

export interface LineError {
  line: number;
  message: string;
}

/** Reads `KEY=value` lines (blank lines and `#` comments skipped, quotes around a value
 * taken off); a number where the schema says integer. */
export function parseLines(text: string, schema?: BuildSchema): { config: Config; errors: LineError[] } {
  const config: Config = {};
  const errors: LineError[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq < 1) {
      errors.push({ line: i + 1, message: `"${line}" is not KEY=value` });
      return;
    }
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (!isKey(key)) {
      errors.push({ line: i + 1, message: `"${key}" is not a setting name: capitals, digits and _` });
      return;
    }
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0]!)) value = value.slice(1, -1);
    if (key in config) errors.push({ line: i + 1, message: `${key} is set twice; the last line counts` });
    const type = schema?.properties[key]?.type;
    config[key] = type === 'integer' && /^-?\d+$/.test(value) ? Number(value) : value;
  });
  return { config, errors };
}

/** The command Armbian's build runs with, as a person would type it. */
export function command(config: Config, schema?: BuildSchema): string {
  return ['./compile.sh build', ...ordered(config, schema).map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)}`)].join(' ');
}

/** The setting a form field's id names (`root_FIXED_IMAGE_SIZE` → `FIXED_IMAGE_SIZE`). */
export function fieldOf(id: string | undefined): string | undefined {
  if (!id?.startsWith('root_')) return undefined;
  const key = id.slice('root_'.length);
  return isKey(key) ? key : undefined;
}

/** A problem as the server answers it (`POST /api/v1/board-configs/validate`). */
export interface Problem {
  path: string;
  code: string;
  message: string;
  severity: string;
}

/** AJV's errors in the words the server uses for the same cases, keyed by setting. */
export interface AjvError {
  name?: string;
  property?: string;
  message?: string;
  params?: Record<string, unknown>;
  stack?: string;
}

function list(options: unknown[], atMost = 12): string {
  const names = options.slice(0, atMost).map(String);
  if (options.length > atMost) names.push(`… (${options.length} in all)`);
  return names.length < 2 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** Rewrites AJV's errors as Quire says them (crates/quire-armbian/src/check.rs), dropping the
 * ones that only repeat another (`if`, each `const` of a `oneOf`). */
export function explain<E extends AjvError>(errors: E[], config: Config, schema: BuildSchema): E[] {
  const board = typeof config.BOARD === 'string' ? config.BOARD : 'this board';
  const seen = new Set<string>();
  const out: E[] = [];
  for (const e of errors) {
    if (e.name === 'if' || e.name === 'const') continue;
    let field = (e.property ?? '').replace(/^\./, '');
    let message = e.message ?? '';
    const value = config[field];
    const title = schema.properties[field]?.title ?? field;
    if (e.name === 'required') {
      field = String(e.params?.missingProperty ?? field);
      message =
        field === 'DESKTOP_ENVIRONMENT'
          ? 'a desktop image names its desktop environment'
          : field === 'FIXED_IMAGE_SIZE'
            ? 'an f2fs image needs its size in MiB'
            : `${schema.properties[field]?.title ?? field} is required`;
    } else if (e.name === 'oneOf') {
      const what = field === 'BOARD' ? 'a board' : field === 'RELEASE' ? 'a release' : 'one of the choices';
      message = `'${value}' is not ${what} of this Armbian configuration`;
    } else if (e.name === 'enum' && field === 'BUILD_DESKTOP') {
      message = 'a minimal image has no desktop: BUILD_DESKTOP must be no while BUILD_MINIMAL is yes';
    } else if (e.name === 'enum') {
      const options = (e.params?.allowedValues as unknown[]) ?? [];
      message =
        field === 'BRANCH'
          ? `${board} does not build the '${value}' kernel branch; it builds ${list(options)}`
          : field === 'RELEASE'
            ? `'${value}' is not built for the architecture of ${board}; choose ${list(options)}`
            : `${title} is '${value}'; it takes ${list(options)}`;
    } else if (e.name === 'type') {
      message = `${title} must be ${schema.properties[field]?.type === 'integer' ? 'a whole number' : 'text'}, not ${value}`;
    } else if (e.name === 'pattern' && field === 'COMPRESS_OUTPUTIMAGE') {
      message = `'${value}' is not a comma-separated list of sha, gpg, img, xz and zst`;
    }
    const key = `${field}\n${e.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ ...e, property: `.${field}`, message, stack: `${title}: ${message}` });
  }
  return out;
}

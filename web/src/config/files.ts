// The files that go with a board configuration into Armbian's userpatches/: as the shared
// document lists them (the `files` map of `content`, docs/crdt-layout.md), the same path
// rules as the server's (quire-collab's build_config::check_path), and what a new file may
// start from.
import * as Y from 'yjs';
import { CONTENT } from './model';

export const FILES = 'files';

export interface FileEntry {
  path: string;
  sha256: string;
  size: number;
  mode: '644' | '755';
  text: boolean;
  updated_by: string;
  updated_by_name: string;
  updated_at: number;
}

/** The files the configuration holds now, in path order. */
export function readFiles(doc: Y.Doc): FileEntry[] {
  const files = doc.getMap(CONTENT).get(FILES);
  if (!(files instanceof Y.Map)) return [];
  const out: FileEntry[] = [];
  files.forEach((v, path) => {
    const e = v instanceof Y.Map ? (v.toJSON() as Record<string, unknown>) : (v as Record<string, unknown> | null);
    if (!e || typeof e.sha256 !== 'string') return;
    out.push({
      path,
      sha256: e.sha256,
      size: Number(e.size ?? 0),
      mode: e.mode === '755' ? '755' : '644',
      text: Boolean(e.text),
      updated_by: String(e.updated_by ?? ''),
      updated_by_name: String(e.updated_by_name ?? ''),
      updated_at: Number(e.updated_at ?? 0),
    });
  });
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export const MAX_PATH = 240;
export const MAX_DEPTH = 16;

/** Why `path` cannot be a file's path inside userpatches/, or null when it can. */
export function pathProblem(path: string): string | null {
  if (!path) return 'Give the file a path, as customize-image.sh or overlay/etc/motd.';
  if (path.length > MAX_PATH) return `A path is at most ${MAX_PATH} characters.`;
  if (path.startsWith('/')) return 'Paths are inside userpatches/: leave out the leading /.';
  const parts = path.split('/');
  if (parts.length > MAX_DEPTH + 1) return `A path is at most ${MAX_DEPTH} folders deep.`;
  for (const part of parts) {
    if (!part) return 'A folder name is empty (// or a / at the end).';
    if (part === '.' || part === '..') return 'Name the folders inside userpatches/; . and .. are not taken.';
    const bad = [...part].find((c) => !/[A-Za-z0-9._+\-@=,~]/.test(c));
    if (bad) return `"${bad === ' ' ? 'a space' : bad}" is not taken in a path: use letters, digits and ._+-@=,~`;
  }
  if (parts[0]!.startsWith('.quire')) return 'Names starting .quire are Quire’s own.';
  return null;
}

/** A folder and what is in it, for the tree the file list draws. */
export interface Folder {
  name: string;
  path: string;
  folders: Folder[];
  files: FileEntry[];
}

/** The files as folders, each folder's folders first, then its files, by name. */
export function tree(files: FileEntry[]): Folder {
  const root: Folder = { name: '', path: '', folders: [], files: [] };
  for (const f of files) {
    const parts = f.path.split('/');
    let at = root;
    for (const part of parts.slice(0, -1)) {
      const path = at.path ? `${at.path}/${part}` : part;
      let next = at.folders.find((d) => d.name === part);
      if (!next) {
        next = { name: part, path, folders: [], files: [] };
        at.folders.push(next);
      }
      at = next;
    }
    at.files.push(f);
  }
  const sort = (d: Folder) => {
    d.folders.sort((a, b) => (a.name < b.name ? -1 : 1));
    d.folders.forEach(sort);
  };
  sort(root);
  return root;
}

/** What a new file may start from: the places Armbian reads in userpatches/. */
export const STARTERS: { path: string; title: string; text: string }[] = [
  {
    path: 'customize-image.sh',
    title: 'customize-image.sh — runs inside the image before it is closed',
    text: `#!/bin/bash
# Armbian runs this inside the image, as root, before the image is closed.
# Files under userpatches/overlay/ are in /tmp/overlay while it runs.
# Arguments: $1 release (noble, bookworm…), $2 board family, $3 board, $4 build desktop.

RELEASE=$1
LINUXFAMILY=$2
BOARD=$3
BUILD_DESKTOP=$4

set -e
`,
  },
  {
    path: 'overlay/',
    title: 'overlay/… — files customize-image.sh copies into the image',
    text: '',
  },
  {
    path: 'lib.config',
    title: 'lib.config — extra build settings and package lists',
    text: '# Sourced by the build after its own configuration.\n# PACKAGE_LIST_ADDITIONAL="$PACKAGE_LIST_ADDITIONAL htop"\n',
  },
  {
    path: 'linux-rockchip64-current.config',
    title: 'linux-<family>-<branch>.config — the kernel configuration to build with',
    text: '',
  },
];

/** The language a file is edited as. */
export function languageOf(path: string, text: string): 'shell' | 'properties' | 'plain' {
  if (/\.(sh|bash)$/.test(path) || /^#!.*\b(ba)?sh\b/.test(text)) return 'shell';
  if (/\.(config|conf|cfg)$/.test(path) || /(^|\/)lib\.config$/.test(path)) return 'properties';
  return 'plain';
}

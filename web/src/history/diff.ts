// The difference between two versions of a document, block by block, for showing in the
// document's own formatting: blocks that stayed, that were added or removed, and blocks
// edited in place (same kind of block), whose words are diffed.
import { diffArrays, diffWords, type ChangeObject } from 'diff';
import type { JSONContent } from '@tiptap/core';

export type DiffBlock =
  | { kind: 'same' | 'added' | 'removed'; block: JSONContent }
  | { kind: 'changed'; block: JSONContent; old: JSONContent; words: ChangeObject<string>[] };

/** The text of a node, blocks separated by a line break. */
export function textOf(node: JSONContent): string {
  if (node.type === 'text') return node.text ?? '';
  if (node.type === 'hardBreak') return '\n';
  const parts = (node.content ?? []).map(textOf);
  const inline = !node.content?.some((c) => c.type !== 'text' && c.type !== 'hardBreak');
  return parts.join(inline ? '' : '\n');
}

/** Two blocks are the same kind when one could have been edited into the other. */
function sameKind(a: JSONContent, b: JSONContent): boolean {
  return a.type === b.type && (a.type !== 'heading' || a.attrs?.level === b.attrs?.level);
}

export function diffDocs(from: JSONContent, to: JSONContent): DiffBlock[] {
  const a = from.content ?? [];
  const b = to.content ?? [];
  const key = (n: JSONContent) => JSON.stringify(n);
  const parts = diffArrays(a.map(key), b.map(key));
  const out: DiffBlock[] = [];
  let i = 0;
  let j = 0;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p]!;
    const n = part.count ?? part.value.length;
    if (!part.added && !part.removed) {
      for (let k = 0; k < n; k++) out.push({ kind: 'same', block: b[j + k]! });
      i += n;
      j += n;
      continue;
    }
    if (part.removed) {
      const removed = a.slice(i, i + n);
      i += n;
      // A removal followed by an addition: blocks of the same kind were edited in place.
      const next = parts[p + 1];
      const added = next?.added ? b.slice(j, j + (next.count ?? next.value.length)) : [];
      if (next?.added) {
        j += added.length;
        p++;
      }
      let r = 0;
      let s = 0;
      while (r < removed.length || s < added.length) {
        const old = removed[r];
        const neu = added[s];
        if (old && neu && sameKind(old, neu)) {
          out.push({ kind: 'changed', block: neu, old, words: diffWords(textOf(old), textOf(neu)) });
          r++;
          s++;
        } else if (old && (!neu || removed.length - r >= added.length - s)) {
          out.push({ kind: 'removed', block: old });
          r++;
        } else if (neu) {
          out.push({ kind: 'added', block: neu });
          s++;
        }
      }
      continue;
    }
    for (let k = 0; k < n; k++) out.push({ kind: 'added', block: b[j + k]! });
    j += n;
  }
  return out;
}

/** How much changed: blocks added, removed and edited. */
export function summary(blocks: DiffBlock[]): { added: number; removed: number; changed: number } {
  const count = (k: DiffBlock['kind']) => blocks.filter((b) => b.kind === k).length;
  return { added: count('added'), removed: count('removed'), changed: count('changed') };
}

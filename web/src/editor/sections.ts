// A PRD's sections as the editor has them: a heading and the blocks under it, up to the
// next heading of its level or above.
import type { Node as PMNode } from '@tiptap/pm/model';

export interface SectionRange {
  /** Where the heading starts, and where its section's blocks start and end. */
  heading: number;
  from: number;
  to: number;
  level: number;
}

/** The section under the first heading whose text is `title`; `null` when there is none. */
export function sectionRange(doc: PMNode, title: string): SectionRange | null {
  let found: SectionRange | null = null;
  let done = false;
  doc.forEach((node, offset) => {
    if (done) return;
    if (node.type.name !== 'heading') return;
    const level = node.attrs.level as number;
    if (found) {
      if (level <= found.level) {
        found.to = offset;
        done = true;
      }
      return;
    }
    if (node.textContent.trim() === title.trim()) {
      const from = offset + node.nodeSize;
      found = { heading: offset, from, to: doc.content.size, level };
    }
  });
  return found;
}

/**
 * A model's answer for one section, ready to put under its heading: a heading repeating the
 * section's title (which models often write first) is dropped, as are fences around it all.
 */
export function sectionAnswer(text: string, title: string): string {
  let t = text.trim();
  const fenced = /^```(?:markdown|md)?\n([\s\S]*?)\n```$/.exec(t);
  if (fenced) t = fenced[1]!.trim();
  const first = /^#{1,6}\s+(.*)\n?/.exec(t);
  if (first && first[1]!.trim().replace(/:$/, '').toLowerCase() === title.trim().toLowerCase()) {
    t = t.slice(first[0].length).trim();
  }
  return t;
}

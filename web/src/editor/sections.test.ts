import { describe, expect, it } from 'vitest';
import { getSchema } from '@tiptap/core';
import { Node as PMNode } from '@tiptap/pm/model';
import { prdExtensions } from './extensions';
import { sectionAnswer, sectionRange } from './sections';

const schema = getSchema(prdExtensions());
const p = (text: string) => ({ type: 'paragraph', content: [{ type: 'text', text }] });
const h = (level: number, text: string) => ({ type: 'heading', attrs: { level }, content: [{ type: 'text', text }] });
const doc = (...content: object[]) => PMNode.fromJSON(schema, { type: 'doc', content });

describe('a section of the document', () => {
  it('runs from its heading to the next heading of its level or above', () => {
    const d = doc(h(1, 'Title'), h(2, 'Goals'), p('Fast.'), h(3, 'Detail'), p('More.'), h(2, 'Risks'), p('Fraud.'));
    const goals = sectionRange(d, 'Goals')!;
    const text = d.textBetween(goals.from, goals.to, '|');
    expect(text).toBe('Fast.|Detail|More.');
    expect(d.nodeAt(goals.heading)?.textContent).toBe('Goals');
    const risks = sectionRange(d, 'Risks')!;
    expect(risks.to).toBe(d.content.size);
    expect(sectionRange(d, 'Nowhere')).toBeNull();
  });

  it('is empty when the next heading follows at once', () => {
    const d = doc(h(2, 'Goals'), h(2, 'Risks'));
    const goals = sectionRange(d, 'Goals')!;
    expect(goals.from).toBe(goals.to);
  });
});

describe("a model's answer for a section", () => {
  it('loses a heading repeating the title, and fences around it all', () => {
    expect(sectionAnswer('## Goals\n\n- Sync in 60 s', 'Goals')).toBe('- Sync in 60 s');
    expect(sectionAnswer('```markdown\n### goals:\n- a\n```', 'Goals')).toBe('- a');
    expect(sectionAnswer('## Other\n- a', 'Goals')).toBe('## Other\n- a');
  });
});

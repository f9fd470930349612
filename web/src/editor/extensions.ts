// The nodes and marks of a PRD as the browser shows them: the live editor, the draft
// preview and the version history all render a PRD with this one list, so a draft looks
// as it will once approved. Everything here round-trips through Quire's Markdown
// (docs/crdt-layout.md).
import { generateHTML, type AnyExtension, type JSONContent } from '@tiptap/core';
import { MarkdownManager } from '@tiptap/markdown';
import StarterKit from '@tiptap/starter-kit';
import { TableKit } from '@tiptap/extension-table';
import { TaskItem, TaskList } from '@tiptap/extension-list';
import Image from '@tiptap/extension-image';

export function prdExtensions(): AnyExtension[] {
  return [
    // Undo and redo are the collaboration's own in the live editor (each person undoes only
    // their changes); underline has no Markdown, which PRDs are written to and read from.
    StarterKit.configure({ undoRedo: false, underline: false, link: { openOnClick: false, autolink: true } }),
    TaskList,
    TaskItem.configure({ nested: true }),
    TableKit.configure({ table: { resizable: false } }),
    Image,
  ];
}

let manager: MarkdownManager | null = null;

/** Markdown to a PRD's JSON and back, with the editor's own nodes and marks. */
export function prdMarkdown(): MarkdownManager {
  manager ??= new MarkdownManager({ extensions: prdExtensions() });
  return manager;
}

/** The HTML a PRD's nodes render as in the editor (same schema, same tags). */
export function prdHTML(content: JSONContent[]): string {
  return generateHTML({ type: 'doc', content }, prdExtensions());
}

// The nodes and marks of a PRD as the browser shows them: the live editor, the draft
// preview and the version history all render a PRD with this one list, so a draft looks
// as it will once approved. Everything here round-trips through Quire's Markdown
// (docs/crdt-layout.md).
import { generateHTML, type AnyExtension, type JSONContent } from '@tiptap/core';
import { MarkdownManager } from '@tiptap/markdown';
import StarterKit from '@tiptap/starter-kit';
import { Table, TableKit } from '@tiptap/extension-table';
import type { Node as PMNode } from '@tiptap/pm/model';
import { Plugin, type EditorState } from '@tiptap/pm/state';
import { tableEditingKey } from '@tiptap/pm/tables';
import { TaskItem, TaskList } from '@tiptap/extension-list';
import Image from '@tiptap/extension-image';

export function prdExtensions(): AnyExtension[] {
  return [
    // Undo and redo are the collaboration's own in the live editor (each person undoes only
    // their changes); underline has no Markdown, which PRDs are written to and read from.
    StarterKit.configure({ undoRedo: false, underline: false, link: { openOnClick: false, autolink: true } }),
    TaskList,
    TaskItem.configure({ nested: true }),
    TableKit.configure({ table: false }),
    Table.configure({ resizable: false }).extend({
      addProseMirrorPlugins() {
        return (this.parent?.() ?? []).map(cheapTableFixes);
      },
    }),
    Image,
  ];
}

/** Whether a document holds a table (its text is not read). */
export function hasTable(doc: PMNode): boolean {
  let found = false;
  doc.descendants((node) => {
    if (node.type.spec.tableRole === 'table') found = true;
    return !found && !node.isTextblock;
  });
  return found;
}

/**
 * prosemirror-tables mends tables after every change by walking the old and the new document
 * side by side, which is quadratic when every node is new — as when a document is built from
 * Yjs on opening it (4.5 s of a 5 MB document's opening went there). A change of the
 * document is mended here only in a document that holds a table, reading the new document
 * alone (linear); a change of the selection alone goes to it as before (it walks nothing).
 */
export function cheapTableFixes(plugin: Plugin): Plugin {
  const append = plugin.spec.appendTransaction;
  if (plugin.spec.key !== tableEditingKey || !append) return plugin;
  return new Plugin({
    ...plugin.spec,
    appendTransaction: (trs, old, state) => {
      if (old.doc === state.doc) return append.call(plugin, trs, old, state);
      return hasTable(state.doc) ? append.call(plugin, trs, undefined as unknown as EditorState, state) : null;
    },
  });
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

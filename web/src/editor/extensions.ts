// The nodes and marks of a PRD as the browser shows them: the live editor, the draft
// preview and the version history all render a PRD with this one list, so a draft looks
// as it will once approved. Everything here round-trips through Quire's Markdown
// (docs/crdt-layout.md).
import { Extension, generateHTML, type AnyExtension, type JSONContent } from '@tiptap/core';
import { MarkdownManager } from '@tiptap/markdown';
import StarterKit from '@tiptap/starter-kit';
import { Table, TableKit } from '@tiptap/extension-table';
import type { Node as PMNode } from '@tiptap/pm/model';
import { Plugin, type EditorState } from '@tiptap/pm/state';
import { tableEditingKey } from '@tiptap/pm/tables';
import { Decoration, DecorationSet } from '@tiptap/pm/view';
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

/** Top-level blocks from which a document lays out only what is on screen. */
export const LAZY_LAYOUT_BLOCKS = 400;

/**
 * A long document lays out only the blocks on screen: its editor gets `lazy-layout`, and
 * styles.css gives its blocks `content-visibility: auto` (a 5 MB document spent 1.6 s of
 * its opening laying out all of itself on selection reads). The blocks the selection is in
 * are always laid out (`caret-block`): text typed into a block the browser has not laid out
 * yet could otherwise have its caret put back at the block's start.
 */
export const LazyLayout = Extension.create({
  name: 'lazyLayout',
  addProseMirrorPlugins() {
    return [
      new Plugin({
        props: {
          attributes: (state): Record<string, string> =>
            state.doc.childCount >= LAZY_LAYOUT_BLOCKS ? { class: 'lazy-layout' } : {},
          decorations: caretBlocks,
        },
      }),
    ];
  },
});

/** The top-level blocks the selection starts and ends in, marked `caret-block` (in a long document). */
export function caretBlocks(state: EditorState): DecorationSet | null {
  const { doc, selection } = state;
  if (doc.childCount < LAZY_LAYOUT_BLOCKS) return null;
  const indices = new Set([selection.$from, selection.$to].map(($pos) => Math.min($pos.index(0), doc.childCount - 1)));
  const marks = [...indices].map((index) => {
    const from = selection.$from.posAtIndex(index, 0);
    return Decoration.node(from, from + doc.child(index).nodeSize, { class: 'caret-block' });
  });
  return DecorationSet.create(doc, marks);
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

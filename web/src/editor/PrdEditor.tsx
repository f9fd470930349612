import { useEffect, useMemo, useState } from 'react';
import { createPortal } from 'react-dom';
import { EditorContent, useEditor, useEditorState, type Editor } from '@tiptap/react';
import Collaboration from '@tiptap/extension-collaboration';
import CollaborationCaret from '@tiptap/extension-collaboration-caret';
import { useStore } from 'zustand';
import { collabFor, retain, type Collab } from '../collab/collab';
import { Presence, SaveBadge } from '../collab/Presence';
import { LazyLayout, prdExtensions } from './extensions';
import { Toolbar } from './Toolbar';
import { rewriteKey, rewritePlugin, RewriteCard } from './Rewrite';
import { useWorkspaceAi } from '../drafts/queries';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { ago } from '../screens/Documents';


/** A PRD, edited together live: the text, who is here, where each is, and its outline. */
export function PrdEditor({
  ws,
  docId,
  userId,
  userName,
  canEdit = true,
}: {
  ws: string;
  docId: string;
  userId: string;
  userName: string;
  /** Viewers read along live (carets, presence) but cannot change the text. */
  canEdit?: boolean;
}) {
  // One connection per document and user, closed soon after the page leaves it.
  const collab = useMemo(() => collabFor(docId, { id: userId, name: userName }), [docId, userId, userName]);
  useEffect(() => retain(collab), [collab]);
  return <LiveEditor key={docId} collab={collab} ws={ws} docId={docId} canEdit={canEdit} />;
}

function LiveEditor({ collab, ws, docId, canEdit }: { collab: Collab; ws: string; docId: string; canEdit: boolean }) {
  const editor = useEditor(
    {
      extensions: [
        ...prdExtensions(),
        LazyLayout,
        Collaboration.configure({ document: collab.doc, field: 'default' }),
        CollaborationCaret.configure({
          provider: collab.provider,
          user: collab.provider.awareness.getLocalState()?.user,
        }),
      ],
      editorProps: { attributes: { class: 'prose', 'aria-label': 'Document text', spellcheck: 'true' } },
    },
    [collab],
  );

  // What others see of this person: the section the caret is in, whether they are typing
  // (in the last minute) or reading, and whether they are away (the tab hidden, or five
  // minutes without input). Only changes go out: every awareness change reaches everyone.
  useEffect(() => {
    if (!editor) return;
    const awareness = collab.provider.awareness;
    let typedAt = 0;
    let inputAt = Date.now();
    const set = (key: string, value: unknown) => {
      if (JSON.stringify(awareness.getLocalState()?.[key]) !== JSON.stringify(value)) awareness.setLocalStateField(key, value);
    };
    const refresh = () => {
      const now = Date.now();
      const section = sectionAt(editor);
      set('section', section);
      set('activity', { type: now - typedAt < 60_000 ? 'editing' : 'viewing', ...(section ? { resource: section } : {}) });
      set('away', document.visibilityState === 'hidden' || now - inputAt > 5 * 60_000);
    };
    const typed = () => {
      if (!editor.isFocused) return;
      typedAt = inputAt = Date.now();
      refresh();
    };
    const touched = () => {
      inputAt = Date.now();
      refresh();
    };
    window.addEventListener('keydown', typed);
    window.addEventListener('pointerdown', touched);
    document.addEventListener('visibilitychange', refresh);
    editor.on('selectionUpdate', refresh);
    // Typing turns to reading, and quiet to away, with time alone.
    const tick = window.setInterval(refresh, 30_000);
    refresh();
    return () => {
      window.removeEventListener('keydown', typed);
      window.removeEventListener('pointerdown', touched);
      document.removeEventListener('visibilitychange', refresh);
      editor.off('selectionUpdate', refresh);
      window.clearInterval(tick);
    };
  }, [editor, collab]);

  // A section being rewritten by AI: its suggestion is shown in the document after it.
  const [rewriting, setRewriting] = useState<string | null>(null);
  const host = useMemo(() => document.createElement('div'), []);
  useEffect(() => {
    if (!editor) return;
    editor.registerPlugin(rewritePlugin(host));
    return () => {
      if (!editor.isDestroyed) editor.unregisterPlugin(rewriteKey);
    };
  }, [editor, host]);
  useEffect(() => {
    if (editor && !editor.isDestroyed) editor.view.dispatch(editor.state.tr.setMeta(rewriteKey, { title: rewriting }));
  }, [editor, rewriting]);
  const ai = useWorkspaceAi(ws);
  // Once this browser's changes are saved, their version follows within moments: look again
  // at who changed which section then, but not at every pause in typing (each look reads
  // the document's latest versions).
  const client = useQueryClient();
  const save = useStore(collab.status, (s) => s.save);
  useEffect(() => {
    if (save !== 'saved') return;
    const key = ['sections', docId];
    const t = window.setTimeout(() => {
      const fetched = client.getQueryState(key)?.dataUpdatedAt ?? 0;
      if (Date.now() - fetched > 10_000) void client.invalidateQueries({ queryKey: key });
    }, 1500);
    return () => window.clearTimeout(t);
  }, [save, client, docId]);
  const canRewrite = !!ai.data && ai.data.text !== 'quire-builtin';

  const ended = useStore(collab.status, (s) => s.ended);
  useEffect(() => {
    editor?.setEditable(!ended && canEdit);
  }, [editor, ended, canEdit]);

  return (
    <div className="editor-layout">
      <div className="editor-main">
        <div className="editor-bar">
          {editor && canEdit && <Toolbar editor={editor} />}
          {!canEdit && (
            <p className="read-only-note muted small-text" role="note">
              View only: you see changes as they happen. Ask an admin of this workspace to make you an editor.
            </p>
          )}
          <div className="editor-bar-end">
            <Presence collab={collab} />
            <SaveBadge collab={collab} />
          </div>
        </div>
        {ended && (
          <p className="error" role="alert">
            {ended}
          </p>
        )}
        <EditorContent editor={editor} className="editor-page" />
        {editor && rewriting && createPortal(<RewriteCard key={rewriting} editor={editor} ws={ws} docId={docId} title={rewriting} onClose={() => setRewriting(null)} />, host)}
      </div>
      {editor && <Outline editor={editor} docId={docId} onRewrite={ended || !canEdit ? undefined : setRewriting} canRewrite={canRewrite} />}
    </div>
  );
}

/** The heading text of the section the selection is in ('' before the first heading). */
export function sectionAt(editor: Editor): string {
  const { from } = editor.state.selection;
  let section = '';
  editor.state.doc.forEach((node, offset) => {
    if (offset <= from && node.type.name === 'heading') section = node.textContent;
  });
  return section;
}

/** The document's headings, to jump to; and who is in each section now. */
/** Who last changed each section, by heading, as the document's versions tell it. */
function useSectionAuthors(docId: string): Map<string, string> {
  const sections = useQuery({
    queryKey: ['sections', docId],
    queryFn: () => unwrap(api.GET('/api/v1/documents/{id}/sections', { params: { path: { id: docId } } })),
    // Versions follow edits within a second or two; a glance every half minute is enough.
    refetchInterval: 30_000,
  });
  return useMemo(() => {
    const by = new Map<string, string>();
    for (const s of sections.data ?? []) {
      const names = (s.authors as { name?: string }[]).map((a) => a.name).filter(Boolean);
      const who = names.length > 2 ? `${names[0]} and ${names.length - 1} others` : names.join(' and ') || 'Quire';
      if (!by.has(s.title)) by.set(s.title, `${who}${s.settled ? ', a while ago' : `, ${ago(s.changed_at)}`}`);
    }
    return by;
  }, [sections.data]);
}

function Outline({
  editor,
  docId,
  onRewrite,
  canRewrite,
}: {
  editor: Editor;
  docId: string;
  onRewrite?: (title: string) => void;
  canRewrite: boolean;
}) {
  const authors = useSectionAuthors(docId);
  const headings = useEditorState({
    editor,
    selector: ({ editor: e }) => {
      const list: { level: number; text: string; pos: number }[] = [];
      e.state.doc.forEach((node, offset) => {
        if (node.type.name === 'heading') list.push({ level: node.attrs.level as number, text: node.textContent, pos: offset });
      });
      return list;
    },
    equalityFn: (a, b) => JSON.stringify(a) === JSON.stringify(b),
  });
  return (
    <nav className="outline" aria-label="Outline">
      <h2>Outline</h2>
      {headings.length === 0 ? (
        <p className="muted small-text">Headings you write appear here.</p>
      ) : (
        <ul>
          {headings.map((h) => (
            <li key={h.pos} className="outline-item" style={{ paddingLeft: `${(h.level - 1) * 0.75}rem` }}>
              <button
                className="link-button"
                onClick={() => {
                  editor.chain().focus().setTextSelection(h.pos + 1).scrollIntoView().run();
                }}
              >
                {h.text || 'Untitled section'}
                {authors.get(h.text) && <span className="outline-author">{authors.get(h.text)}</span>}
              </button>
              {onRewrite && h.level > 1 && h.text.trim() && (
                <button
                  className="icon rewrite-button"
                  aria-label={`Rewrite “${h.text}” with AI`}
                  title={canRewrite ? `Rewrite “${h.text}” with AI` : 'Rewriting needs a language model: the local model or a provider (workspace settings)'}
                  disabled={!canRewrite}
                  onClick={() => onRewrite(h.text)}
                >
                  ✦
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </nav>
  );
}

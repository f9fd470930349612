// One section rewritten or extended by AI as asked ("make the goals measurable"): the
// suggestion appears in the document right after its section, the text now and the
// suggestion side by side; accepting replaces the section's blocks in the live document as
// the user's own change (so everyone sees it, and it can be undone), rejecting drops it.
import { useEffect, useMemo, useReducer, useState } from 'react';
import { useMutation } from '@tanstack/react-query';
import type { Editor } from '@tiptap/react';
import type { JSONContent } from '@tiptap/core';
import { Plugin, PluginKey } from '@tiptap/pm/state';
import { Decoration, DecorationSet } from '@tiptap/pm/view';
import { api, unwrap } from '../api/client';
import { ErrorText } from '../components/Problem';
import { emptyView, fold, follow, TERMINAL, type ContextEvent, type DraftStatus, type DraftView } from '../drafts/stream';
import { prdHTML, prdMarkdown } from './extensions';
import { sectionAnswer, sectionRange } from './sections';

export const rewriteKey = new PluginKey<{ title: string | null }>('quire-rewrite');

/** Shows `host` right after the section being rewritten, wherever edits move it. */
export function rewritePlugin(host: HTMLElement): Plugin {
  return new Plugin({
    key: rewriteKey,
    state: {
      init: (): { title: string | null } => ({ title: null }),
      apply: (tr, value) => (tr.getMeta(rewriteKey) as { title: string | null } | undefined) ?? value,
    },
    props: {
      decorations(state) {
        const title = rewriteKey.getState(state)?.title;
        const range = title ? sectionRange(state.doc, title) : null;
        if (!range) return null;
        const widget = Decoration.widget(range.to, host, { key: 'quire-rewrite', side: -1, stopEvent: () => true, ignoreSelection: true });
        return DecorationSet.create(state.doc, [widget]);
      },
    },
  });
}

/** The section's blocks now, as JSON. */
function sectionContent(editor: Editor, title: string): JSONContent[] | null {
  const range = sectionRange(editor.state.doc, title);
  if (!range) return null;
  return (editor.state.doc.slice(range.from, range.to).content.toJSON() as JSONContent[] | null) ?? [];
}

const quick = ['Make it measurable', 'Make it shorter', 'Add more detail', 'Fix the grammar'];

export function RewriteCard({ editor, ws, docId, title, onClose }: { editor: Editor; ws: string; docId: string; title: string; onClose: () => void }) {
  const [instruction, setInstruction] = useState('');
  const [contextId, setContextId] = useState<string | null>(null);
  const [final, setFinal] = useState<string | null>(null);
  const [view, dispatch] = useReducer(
    (v: DraftView, a: ContextEvent | { reset: DraftView }) => ('reset' in a ? a.reset : fold(v, a)),
    emptyView(),
  );
  const now = useMemo(() => sectionContent(editor, title), [editor, title]);
  const submit = useMutation({
    mutationFn: (what: string) =>
      unwrap(
        api.POST('/api/v1/contexts', {
          body: {
            workspace: ws,
            type: 'prd',
            pipeline: ['ai_generator'],
            idempotency_key: crypto.randomUUID(),
            data: {
              prompt_template: 'prd.section',
              document_id: docId,
              section: title,
              instruction: what,
              current: now?.length ? prdMarkdown().serialize({ type: 'doc', content: now }) : '',
            } as never,
          },
        }),
      ),
    onSuccess: (ctx) => {
      dispatch({ reset: emptyView('pending') });
      setFinal(null);
      setContextId(ctx.id);
    },
  });
  // Follow the suggestion as it is written; once it ends, take the generated text.
  useEffect(() => {
    if (!contextId) return;
    return follow(contextId, 0, dispatch, () => {
      void unwrap(api.GET('/api/v1/contexts/{id}', { params: { path: { id: contextId } } })).then((ctx) => {
        const generated = (ctx.data as Record<string, unknown>).generated_content;
        if (ctx.status === 'completed' && typeof generated === 'string') setFinal(sectionAnswer(generated, title));
      });
    });
  }, [contextId, title]);

  const status = view.status;
  const running = contextId !== null && !TERMINAL.has(status as DraftStatus);
  const suggestion = final ?? sectionAnswer(view.text, title);
  const suggested = useMemo(() => (suggestion ? prdMarkdown().parse(suggestion).content ?? [] : []), [suggestion]);
  const [problem, setProblem] = useState<Error | null>(null);
  const accept = () => {
    const range = sectionRange(editor.state.doc, title);
    if (!range) {
      setProblem(new Error(`The section “${title}” is no longer in the document (renamed or deleted by someone?).`));
      return;
    }
    editor.chain().focus().insertContentAt({ from: range.from, to: range.to }, suggested).run();
    onClose();
  };
  return (
    <div className="rewrite-card" contentEditable={false} role="region" aria-label={`Rewrite “${title}” with AI`}>
      <div className="rewrite-head">
        <strong>✦ Rewrite “{title}”</strong>
        <button className="icon" aria-label="Close the suggestion" onClick={onClose}>
          ×
        </button>
      </div>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (instruction.trim()) submit.mutate(instruction.trim());
        }}
      >
        <label htmlFor="rewrite-instruction" className="sr-only">
          What should change in “{title}”?
        </label>
        <input
          id="rewrite-instruction"
          className="grow"
          autoFocus
          placeholder={`What should change in “${title}”?`}
          maxLength={2000}
          value={instruction}
          onChange={(e) => setInstruction(e.target.value)}
        />
        <button className="primary" type="submit" disabled={!instruction.trim() || submit.isPending || running}>
          {contextId ? 'Suggest again' : 'Suggest'}
        </button>
      </form>
      {!contextId && (
        <div className="row quick">
          {quick.map((q) => (
            <button key={q} className="secondary small" type="button" onClick={() => setInstruction(q)}>
              {q}
            </button>
          ))}
        </div>
      )}
      {contextId && (
        <>
          <div className="rewrite-status muted small-text" role="status" aria-live="polite" data-status={status}>
            {status === 'failed'
              ? `No suggestion: ${view.error ?? 'the generation failed'}.`
              : running
                ? 'Writing the suggestion…'
                : status === 'completed'
                  ? 'Suggestion ready: accept it to replace the section, or reject it.'
                  : ''}
          </div>
          <div className="side-by-side">
            <div>
              <h4>Now</h4>
              <div className="prose rewrite-text" dangerouslySetInnerHTML={{ __html: now?.length ? prdHTML(now) : '<p><em>Empty</em></p>' }} />
            </div>
            <div>
              <h4>Suggested</h4>
              <div className="prose rewrite-text suggested" data-testid="suggestion" dangerouslySetInnerHTML={{ __html: prdHTML(suggested) }} />
            </div>
          </div>
          <div className="row">
            <button className="primary" type="button" onClick={accept} disabled={status !== 'completed' || final === null || !suggested.length}>
              Accept
            </button>
            <button className="secondary" type="button" onClick={onClose}>
              Reject
            </button>
          </div>
        </>
      )}
      <ErrorText error={submit.error ?? problem} />
    </div>
  );
}

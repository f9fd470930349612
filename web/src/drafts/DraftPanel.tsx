// Drafting a PRD with AI (seed 002 §1.1): a prompt and a template go to the job engine as a
// context (template → ai_generator → transformer); its text streams into a live preview
// through the context's events; the product owner edits the prompt and regenerates, or
// approves the draft into the live document (one change in their name, a version, and
// prd.approved). Closing the tab loses nothing: the document's latest draft is shown again.
import { useEffect, useMemo, useReducer, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { EditorContent, useEditor } from '@tiptap/react';
import { Markdown } from '@tiptap/markdown';
import { api, unwrap, type Schemas } from '../api/client';
import { ErrorText } from '../components/Problem';
import { prdExtensions } from '../editor/extensions';
import { dismiss, useLatestDraft, useWorkspaceAi } from './queries';
import { emptyView, fold, follow, TERMINAL, type ContextEvent, type DraftStatus, type DraftView } from './stream';

type Context = Schemas['Context'];

/** A context's data: whatever its components added (typed as an open object). */
const dataOf = (ctx: Context) => ctx.data as Record<string, unknown>;

const PIPELINE = ['template', 'ai_generator', 'transformer'];

/** The built-in provider: not a model; the request's statements placed in the template. */
const BUILTIN = 'quire-builtin';

/**
 * Submits a draft of `docId` to the job engine. A draft that fails the quality gate is tried
 * three times in all (not the engine's five): a person is waiting for it.
 */
function submitDraft(ws: string, docId: string, title: string, request: string, template: string, provider?: string) {
  return unwrap(
    api.POST('/api/v1/contexts', {
      body: {
        workspace: ws,
        type: 'prd',
        pipeline: PIPELINE,
        max_attempts: 3,
        idempotency_key: crypto.randomUUID(),
        data: {
          request: request.trim(),
          title,
          document_id: docId,
          ...(template ? { template_id: template } : {}),
          ...(provider ? { provider } : {}),
        } as never,
      },
    }),
  );
}

type ProviderInfo = Schemas['ProviderInfo'];

/** The instance's providers that write text, the built-in one first. */
function useTextProviders(): ProviderInfo[] {
  const q = useQuery({
    queryKey: ['ai-providers'],
    queryFn: () => unwrap(api.GET('/api/v1/ai/providers')),
    staleTime: 60_000,
  });
  return (q.data ?? []).filter((p) => p.text);
}

/** How a provider reads in the "Drafted by" choice. */
function providerLabel(p: ProviderInfo, isDefault: boolean): string {
  const what = p.name === BUILTIN ? 'built-in outline, no AI model' : p.text_model ? `model ${p.text_model}` : p.kind;
  return `${p.name} (${what})${isDefault ? ' · this workspace’s default' : ''}`;
}

/** The Markdown a finished draft holds: the transformer's rendering of the generated sections. */
function finishedText(ctx: Context): string | undefined {
  const formatted = dataOf(ctx).formatted_content as { content?: string } | undefined;
  return formatted?.content;
}

function viewOf(ctx: Context): DraftView {
  const view = emptyView(ctx.status as DraftStatus);
  const text = finishedText(ctx);
  return {
    ...view,
    text: text ?? '',
    chars: text ? [...text].length : 0,
    percent: ctx.progress?.percent ?? 0,
    message: ctx.progress?.message ?? '',
    error: ctx.error?.message,
    attempt: ctx.attempts,
  };
}

export function DraftPanel({
  ws,
  docId,
  title,
  canEdit,
  onClose,
}: {
  ws: string;
  docId: string;
  title: string;
  canEdit: boolean;
  onClose: () => void;
}) {
  const client = useQueryClient();
  const drafts = useLatestDraft(ws, docId);
  // The draft on show: the one just submitted, else the document's latest not yet approved.
  const [shownId, setShownId] = useState<string | null>(null);
  const latest = drafts.data?.items[0];
  const current = shownId ? (latest?.id === shownId ? latest : undefined) : latest && !latest.approved_at ? latest : undefined;
  const [composing, setComposing] = useState(false);
  const writing = current && !TERMINAL.has(current.status as DraftStatus);
  // While a request is written and more than one provider could draft it, the "Drafted by"
  // choice says which; the header names the provider of a draft once there is one.
  const textProviders = useTextProviders();
  const choosing = (!current || composing) && textProviders.length > 1;

  return (
    <section className="draft-panel" aria-label="Draft with AI">
      <header className="draft-head">
        <h2>Draft with AI</h2>
        {!choosing && <Provider ws={ws} ctx={current} />}
        <button
          className="icon"
          aria-label="Close the draft panel"
          title="Close"
          onClick={() => {
            if (current) dismiss(current.id);
            onClose();
          }}
        >
          ×
        </button>
      </header>
      {drafts.isError && <ErrorText error={drafts.error} />}
      {(!current || composing) && drafts.isSuccess && (
        <Prompt
          ws={ws}
          docId={docId}
          title={title}
          canEdit={canEdit}
          initial={current ? (dataOf(current).request as string | undefined) : undefined}
          initialTemplate={current ? (dataOf(current).template as { id?: string } | undefined)?.id : undefined}
          onSubmitted={(ctx) => {
            client.setQueryData(['drafts', docId], { items: [ctx], next_cursor: null });
            setShownId(ctx.id);
            setComposing(false);
          }}
          onCancel={current ? () => setComposing(false) : undefined}
        />
      )}
      {current && (
        <Draft
          key={current.id}
          ws={ws}
          ctx={current}
          canEdit={canEdit}
          composing={composing}
          onRegenerate={() => setComposing(true)}
          onOutline={(ctx) => {
            client.setQueryData(['drafts', docId], { items: [ctx], next_cursor: null });
            setShownId(ctx.id);
          }}
          onApproved={() => {
            void client.invalidateQueries({ queryKey: ['drafts', docId] });
            onClose();
          }}
          onEnded={() => void client.invalidateQueries({ queryKey: ['drafts', docId] })}
        />
      )}
      {writing && <p className="muted small-text">You can close this tab: the draft goes on, and is here when you come back.</p>}
    </section>
  );
}

/** Which provider drafts, and once a draft is done, the model that wrote it. */
function Provider({ ws, ctx }: { ws: string; ctx?: Context }) {
  const ai = useWorkspaceAi(ws);
  const data = ctx ? dataOf(ctx) : {};
  const model = data.model_used as string | undefined;
  const provider = (data.generation_parameters as { provider?: string } | undefined)?.provider ?? ai.data?.text;
  if (!provider) return null;
  return (
    <p className="draft-provider muted small-text" data-testid="draft-provider">
      {provider === 'quire-builtin'
        ? 'Built-in outline (no AI model): your request placed in the template, with open questions'
        : `Provider: ${provider}${model ? ` · model ${model}` : ''}`}
    </p>
  );
}

function Prompt({
  ws,
  docId,
  title,
  canEdit,
  initial,
  initialTemplate,
  onSubmitted,
  onCancel,
}: {
  ws: string;
  docId: string;
  title: string;
  canEdit: boolean;
  initial?: string;
  initialTemplate?: string;
  onSubmitted: (ctx: Context) => void;
  onCancel?: () => void;
}) {
  const [request, setRequest] = useState(initial ?? '');
  const templates = useQuery({
    queryKey: ['templates', ws],
    queryFn: () => unwrap(api.GET('/api/v1/templates', { params: { query: { workspace: ws } } })),
    staleTime: 60_000,
  });
  const prd = useMemo(() => (templates.data ?? []).filter((t) => t.type === 'prd'), [templates.data]);
  const [template, setTemplate] = useState(initialTemplate ?? '');
  const chosen = template || prd[0]?.id || '';
  const ai = useWorkspaceAi(ws);
  const providers = useTextProviders();
  const [provider, setProvider] = useState('');
  const drafter = provider || ai.data?.text || '';
  const submit = useMutation({
    mutationFn: () => submitDraft(ws, docId, title, request, chosen, provider || undefined),
    onSuccess: onSubmitted,
  });
  const drafting = providers.find((p) => p.name === drafter)?.drafting ?? undefined;
  const tooShort = request.trim().length < 10;
  return (
    <form
      className="draft-prompt"
      onSubmit={(e) => {
        e.preventDefault();
        if (!tooShort) submit.mutate();
      }}
    >
      <label htmlFor="draft-request">What should this PRD cover?</label>
      <textarea
        id="draft-request"
        rows={4}
        maxLength={8000}
        placeholder="Field teams lose their notes when they work offline. Notes must sync when the connection returns, without losing anyone's edits."
        value={request}
        onChange={(e) => setRequest(e.target.value)}
      />
      <div className="row draft-actions">
        <label htmlFor="draft-template" className="inline-label">
          Template
        </label>
        <select id="draft-template" value={chosen} onChange={(e) => setTemplate(e.target.value)} disabled={!prd.length}>
          {prd.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </select>
        {providers.length > 1 && (
          <>
            <label htmlFor="draft-provider" className="inline-label">
              Drafted by
            </label>
            <select id="draft-provider" value={drafter} onChange={(e) => setProvider(e.target.value)}>
              {providers.map((p) => (
                <option key={p.name} value={p.name}>
                  {providerLabel(p, p.name === ai.data?.text)}
                </option>
              ))}
            </select>
          </>
        )}
        <span className="grow" />
        {onCancel && (
          <button type="button" className="secondary" onClick={onCancel}>
            Keep the current draft
          </button>
        )}
        <button type="submit" className="primary" disabled={!canEdit || tooShort || submit.isPending}>
          {submit.isPending ? 'Starting…' : initial ? 'Regenerate' : 'Generate draft'}
        </button>
      </div>
      {drafting && !drafting.acceptable && (
        <div className="draft-weak" role="note" data-testid="draft-weak">
          <p>
            <strong>{drafting.model}</strong> is a small model that runs on this server. In Quire&apos;s test of{' '}
            {drafting.of} requests, {drafting.passed} of its drafts passed the quality gate (on topic, no invented figures,
            every section written), {drafting.verdict}
          </p>
          <p className="muted small-text">
            The built-in outline places your request in the template with the questions each section must answer
            {providers.some((p) => p.name !== BUILTIN && p.name !== drafter)
              ? ', and the other providers above may draft better.'
              : '. An instance admin can add an AI provider (OpenAI, Ollama, any OpenAI-compatible server): see docs/ai.md.'}
          </p>
          <button type="button" className="secondary" onClick={() => setProvider(BUILTIN)} disabled={!canEdit}>
            Use the built-in outline
          </button>
        </div>
      )}
      {!canEdit && <p className="muted small-text">Viewers cannot draft into this document.</p>}
      {canEdit && tooShort && request.length > 0 && <p className="muted small-text">Say a little more (at least 10 characters).</p>}
      <ErrorText error={submit.error ?? templates.error} />
    </form>
  );
}

const statusWords: Record<DraftStatus, string> = {
  pending: 'Queued: waiting for a worker…',
  processing: 'Drafting',
  retrying: 'Trying again…',
  completed: 'Draft ready',
  failed: 'The draft failed',
  cancelled: 'Stopped',
};

function Draft({
  ws,
  ctx,
  canEdit,
  composing,
  onRegenerate,
  onOutline,
  onApproved,
  onEnded,
}: {
  ws: string;
  ctx: Context;
  canEdit: boolean;
  composing: boolean;
  onRegenerate: () => void;
  /** The same request drafted again by the built-in outline. */
  onOutline: (ctx: Context) => void;
  onApproved: () => void;
  onEnded: () => void;
}) {
  const [view, dispatch] = useReducer(
    (v: DraftView, action: ContextEvent | { reset: DraftView }) => ('reset' in action ? action.reset : fold(v, action)),
    ctx,
    viewOf,
  );
  const ended = TERMINAL.has(ctx.status as DraftStatus);
  // Follow the context's events while it runs; replayed from the start, they rebuild the
  // text written so far after a reload.
  useEffect(() => {
    if (ended) return;
    return follow(ctx.id, 0, dispatch, onEnded);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ctx.id, ended]);
  // The finished context holds the draft as the transformer rendered it.
  useEffect(() => {
    if (ended) dispatch({ reset: viewOf(ctx) });
  }, [ended, ctx]);

  const approve = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/contexts/{id}/approve', { params: { path: { id: ctx.id } } })),
    onSuccess: onApproved,
  });
  const data = dataOf(ctx);
  const workspaceAi = useWorkspaceAi(ws);
  const provider =
    (data.generation_parameters as { provider?: string } | undefined)?.provider ??
    (data.provider as string | undefined) ??
    workspaceAi.data?.text;
  const outline = useMutation({
    mutationFn: () =>
      submitDraft(
        ws,
        String(data.document_id ?? ''),
        String(data.title ?? ''),
        String(data.request ?? ''),
        String(data.template_id ?? ''),
        BUILTIN,
      ),
    onSuccess: onOutline,
  });
  const stop = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/contexts/{id}/cancel', { params: { path: { id: ctx.id } } })),
  });
  const status = view.status;
  const running = !TERMINAL.has(status);
  return (
    <div className="draft" data-status={status}>
      <div className="draft-status" role="status" aria-live="polite">
        <strong>{statusWords[status]}</strong>
        {running && view.message && <span className="muted"> — {view.message}</span>}
        {status === 'retrying' && view.error && <span className="muted"> (the last attempt: {view.error})</span>}
      </div>
      {running && (
        <div className="progress" aria-hidden>
          <div style={{ width: `${Math.max(4, view.percent)}%` }} />
        </div>
      )}
      {status === 'failed' && (
        <div className="draft-failed" role="alert">
          <p className="error">
            No acceptable draft{provider && provider !== BUILTIN ? ` from ${provider}` : ''}: {view.error ?? 'the draft could not be written'}.
          </p>
          <p className="muted small-text">
            Edit the request and regenerate, start from the built-in outline (your request placed in the template, with
            the questions each section must answer), or ask an admin to set up an AI provider for this workspace.
          </p>
        </div>
      )}
      {status === 'failed' && view.text ? (
        <details className="draft-refused">
          <summary>Show the refused text</summary>
          <Preview markdown={view.text} />
        </details>
      ) : (
        (view.text || running) && <Preview markdown={view.text} />
      )}
      <div className="row draft-actions">
        {running && (
          <button className="secondary" onClick={() => stop.mutate()} disabled={!canEdit || stop.isPending || ctx.cancel_requested}>
            Stop
          </button>
        )}
        {status === 'failed' && provider !== BUILTIN && (
          <button className="secondary" onClick={() => outline.mutate()} disabled={!canEdit || outline.isPending}>
            Use the built-in outline instead
          </button>
        )}
        {!running && !composing && (
          <button className="secondary" onClick={onRegenerate} disabled={!canEdit}>
            Edit the request and regenerate
          </button>
        )}
        <span className="grow" />
        {status === 'completed' && (
          <button className="primary" onClick={() => approve.mutate()} disabled={!canEdit || approve.isPending}>
            {approve.isPending ? 'Approving…' : 'Approve into the document'}
          </button>
        )}
      </div>
      {status === 'completed' && (
        <p className="muted small-text">Approving replaces the document's text with this draft, for everyone editing it; the version before stays in its history.</p>
      )}
      <ErrorText error={approve.error ?? stop.error ?? outline.error} />
    </div>
  );
}

/** The draft rendered as the document will show it, updated as the text grows. */
function Preview({ markdown }: { markdown: string }) {
  const editor = useEditor({
    extensions: [...prdExtensions(), Markdown],
    editable: false,
    content: markdown,
    contentType: 'markdown',
    editorProps: { attributes: { class: 'prose draft-prose', 'aria-label': 'Draft preview' } },
  });
  useEffect(() => {
    if (!editor) return;
    // At most a few renders a second however fast the text comes.
    const t = window.setTimeout(() => editor.commands.setContent(markdown, { contentType: 'markdown' }), 120);
    return () => window.clearTimeout(t);
  }, [editor, markdown]);
  return (
    <div className="draft-preview" data-testid="draft-preview">
      {markdown ? <EditorContent editor={editor} /> : <p className="muted draft-waiting">The text appears here as it is written.</p>}
    </div>
  );
}

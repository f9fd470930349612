import { lazy, Suspense, useEffect, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, documentText, unwrap, type Document } from '../api/client';
import { ErrorText, Problem } from '../components/Problem';
import { useMe } from '../session';
import { ago, kindLabel } from './Documents';
import { isDismissed, useLatestDraft } from '../drafts/queries';

// The editor (TipTap, Yjs) loads with the first document opened, not with the lists.
const loadEditor = () => import('../editor/PrdEditor');
const PrdEditor = lazy(() => loadEditor().then((m) => ({ default: m.PrdEditor })));
const Moodboard = lazy(() => import('../board/Moodboard').then((m) => ({ default: m.Moodboard })));
const ConfigEditor = lazy(() => import('../config/ConfigEditor').then((m) => ({ default: m.ConfigEditor })));
const DraftPanel = lazy(() => import('../drafts/DraftPanel').then((m) => ({ default: m.DraftPanel })));

/** A document, with the caller's role on it (shared by its page and its history). */
export function useDocument(id: string) {
  return useQuery({
    queryKey: ['document', id],
    queryFn: () => unwrap(api.GET('/api/v1/documents/{id}', { params: { path: { id } } })),
  });
}

/** One document: its title, and for a PRD the live editor. */
export function DocumentPage() {
  const { ws = '', id = '' } = useParams();
  const me = useMe();
  const doc = useDocument(id);
  const isPrd = doc.data?.kind === 'prd';
  // The editor's code and the document's socket start with the page, beside the document's
  // own request rather than after it: the content is what a person waits for.
  const user = me.data;
  const kind = doc.data?.kind;
  useEffect(() => {
    if (!user) return;
    if (!kind || kind === 'prd') void loadEditor();
    void import('../collab/collab').then((m) => m.collabFor(id, { id: user.id, name: user.name }));
  }, [id, user, kind]);
  const canEdit = doc.data?.role !== 'viewer';
  // The draft panel is open when asked for (?draft, as a new PRD opens), and by itself while
  // the document's latest draft is being written or waits for approval.
  const [params, setParams] = useSearchParams();
  const latest = useLatestDraft(ws, id, isPrd).data?.items[0];
  const pendingDraft =
    latest && !latest.approved_at && latest.status !== 'cancelled' && !isDismissed(latest.id);
  const drafting = isPrd && canEdit && (params.has('draft') || !!pendingDraft);
  const setDrafting = (open: boolean) =>
    setParams(
      (p) => {
        if (open) p.set('draft', '');
        else p.delete('draft');
        return p;
      },
      { replace: true },
    );
  if (doc.isError) return <Problem error={doc.error} retry={() => doc.refetch()} />;
  const isBoard = doc.data?.kind === 'moodboard';
  // Boards and configurations are workbenches that fill the window.
  const fills = isBoard || doc.data?.kind === 'board-config';
  return (
    <main className={fills ? 'page board-page' : 'page wide'}>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/w/${ws}`}>Documents</Link>
        <span aria-hidden>/</span>
        <span>{doc.data?.title || 'Untitled'}</span>
      </nav>
      {doc.data && (
        <header className="document-header">
          <Title key={doc.data.revision} doc={doc.data} readOnly={!canEdit} />
          <div className="row document-meta">
            <p className="muted">
              <span className={`badge kind-${doc.data.kind}`}>{kindLabel(doc.data.kind)}</span> · changed{' '}
              {ago(doc.data.updated_at)}
            </p>
            <span className="grow" />
            <Link className="button secondary small" to={`/w/${ws}/d/${id}/history`}>
              History
            </Link>
            {isPrd && canEdit && !drafting && (
              <button className="secondary small" onClick={() => setDrafting(true)}>
                ✦ Draft with AI
              </button>
            )}
          </div>
        </header>
      )}
      {drafting && doc.data && (
        <Suspense fallback={<p className="muted">Opening the drafting panel…</p>}>
          <DraftPanel ws={ws} docId={id} title={doc.data.title} canEdit={canEdit} onClose={() => setDrafting(false)} />
        </Suspense>
      )}
      {doc.data?.kind === 'prd' && me.data ? (
        <Suspense fallback={<p className="muted">Opening the editor…</p>}>
          <PrdEditor ws={ws} docId={id} userId={me.data.id} userName={me.data.name} canEdit={canEdit} />
        </Suspense>
      ) : isBoard && me.data && doc.data ? (
        <Suspense fallback={<p className="muted">Opening the board…</p>}>
          <Moodboard ws={ws} docId={id} title={doc.data.title} userId={me.data.id} userName={me.data.name} canEdit={canEdit} />
        </Suspense>
      ) : doc.data?.kind === 'board-config' && me.data ? (
        <Suspense fallback={<p className="muted">Opening the configuration…</p>}>
          <ConfigEditor docId={id} userId={me.data.id} userName={me.data.name} canEdit={canEdit} />
        </Suspense>
      ) : (
        doc.data && <TextView id={id} />
      )}
    </main>
  );
}

/** The title, renamed in place: Enter or leaving the field saves, Escape puts it back. */
function Title({ doc, readOnly }: { doc: Document; readOnly: boolean }) {
  const [title, setTitle] = useState(doc.title);
  const client = useQueryClient();
  const rename = useMutation({
    mutationFn: (t: string) =>
      unwrap(
        api.PATCH('/api/v1/documents/{id}', {
          params: { path: { id: doc.id }, header: { 'If-Match': `"r${doc.revision}"` } },
          body: { title: t },
        }),
      ),
    onSuccess: (d) => client.setQueryData(['document', doc.id], d),
    onError: () => client.invalidateQueries({ queryKey: ['document', doc.id] }),
  });
  const save = () => {
    const t = title.trim();
    if (t && t !== doc.title) rename.mutate(t);
    else setTitle(doc.title);
  };
  return (
    <div>
      <label className="sr-only" htmlFor="document-title">
        Title
      </label>
      <input
        id="document-title"
        className="title-input"
        value={title}
        readOnly={readOnly}
        maxLength={500}
        onChange={(e) => setTitle(e.target.value)}
        onBlur={save}
        onKeyDown={(e) => {
          if (e.key === 'Enter') e.currentTarget.blur();
          if (e.key === 'Escape') {
            setTitle(doc.title);
            e.currentTarget.blur();
          }
        }}
      />
      <ErrorText error={rename.error} />
    </div>
  );
}

/** Kinds without their own editor yet: the content as text. */
function TextView({ id }: { id: string }) {
  const content = useQuery({ queryKey: ['document-text', id], queryFn: () => documentText(id, 'text') });
  if (content.isError) return <Problem error={content.error} retry={() => content.refetch()} />;
  return <article className="document-text">{content.data || <span className="muted">This document is empty.</span>}</article>;
}

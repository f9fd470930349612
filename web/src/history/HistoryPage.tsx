// A document's version history: every version with its number, name, message, authors and
// time; the difference between any two (or a version and the text now) shown in the
// document's own formatting, added and removed words marked; restore with confirmation;
// name a version.
import { useMemo, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { JSONContent } from '@tiptap/core';
import { api, documentText, unwrap, type Schemas } from '../api/client';
import { ErrorText, Problem } from '../components/Problem';
import { prdHTML, prdMarkdown } from '../editor/extensions';
import { ago } from '../screens/Documents';
import { useDocument } from '../screens/DocumentPage';
import { diffDocs, summary, type DiffBlock } from './diff';

type Version = Schemas['DocumentVersion'];
type Author = { id?: string; name?: string; email?: string };


/** A version's Markdown, or the document's text now (`current`). */
async function textAt(docId: string, version: string): Promise<string> {
  if (version === 'current') return documentText(docId, 'markdown');
  const body = await unwrap(
    api.GET('/api/v1/documents/{id}/versions/{version}', { params: { path: { id: docId, version } } }),
  );
  return String((body as { content?: unknown }).content ?? '');
}

export function HistoryPage() {
  const { ws = '', id = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const doc = useDocument(id);
  const versions = useInfiniteQuery({
    queryKey: ['versions', id],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET('/api/v1/documents/{id}/versions', {
          params: { path: { id }, query: { limit: 50, ...(pageParam ? { cursor: pageParam } : {}) } },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const list = useMemo(() => versions.data?.pages.flatMap((p) => p.items) ?? [], [versions.data]);
  const selected = params.get('v') ?? list[0]?.version;
  const index = list.findIndex((v) => v.version === selected);
  const previous = index >= 0 ? list[index + 1]?.version : undefined;
  const against = params.get('against') ?? previous ?? '';
  const choose = (v: string) =>
    setParams(
      (p) => {
        p.set('v', v);
        p.delete('against');
        return p;
      },
      { replace: true },
    );

  if (doc.isError) return <Problem error={doc.error} retry={() => doc.refetch()} />;
  if (versions.isError) return <Problem error={versions.error} retry={() => versions.refetch()} />;
  const current = list[index];
  return (
    <main className="page wide">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/w/${ws}`}>Documents</Link>
        <span aria-hidden>/</span>
        <Link to={`/w/${ws}/d/${id}`}>{doc.data?.title || 'Untitled'}</Link>
        <span aria-hidden>/</span>
        <span>History</span>
      </nav>
      <header className="page-header">
        <h1>History</h1>
      </header>
      {versions.isPending ? (
        <p className="muted">Loading the versions…</p>
      ) : list.length === 0 ? (
        <div className="empty">
          <h2>No versions yet</h2>
          <p>A version is made a few seconds after each significant change to the document.</p>
        </div>
      ) : (
        <div className="history-layout">
          <nav className="versions" aria-label="Versions">
            <ul>
              {list.map((v) => (
                <li key={v.version}>
                  <button
                    className={`version-item${v.version === selected ? ' selected' : ''}`}
                    aria-current={v.version === selected ? 'true' : undefined}
                    onClick={() => choose(v.version)}
                  >
                    <span className="version-number">
                      {v.version}
                      {v.name && <span className="badge version-name">{v.name}</span>}
                    </span>
                    <span className="version-message">{v.message}</span>
                    <span className="muted small-text">
                      {authorsOf(v)} · {ago(v.created_at)}
                    </span>
                  </button>
                </li>
              ))}
            </ul>
            {versions.hasNextPage && (
              <button className="secondary small" onClick={() => versions.fetchNextPage()} disabled={versions.isFetchingNextPage}>
                Older versions
              </button>
            )}
          </nav>
          {current && (
            <section className="version-detail" aria-label={`Version ${current.version}`}>
              <VersionActions key={current.version} docId={id} version={current} canEdit={doc.data?.role !== 'viewer'} />
              <div className="row compare">
                <label htmlFor="against" className="inline-label">
                  Changes since
                </label>
                <select
                  id="against"
                  value={against}
                  onChange={(e) =>
                    setParams(
                      (p) => {
                        p.set('against', e.target.value);
                        return p;
                      },
                      { replace: true },
                    )
                  }
                >
                  {!previous && <option value="">nothing (the first version)</option>}
                  {list
                    .filter((v) => v.version !== current.version)
                    .map((v) => (
                      <option key={v.version} value={v.version}>
                        {v.version}
                        {v.name ? ` (${v.name})` : ''}
                      </option>
                    ))}
                  <option value="current">the text now</option>
                </select>
              </div>
              <RenderedDiff docId={id} from={against} to={current.version} />
            </section>
          )}
        </div>
      )}
    </main>
  );
}

function authorsOf(v: Version): string {
  const names = (v.authors as Author[]).map((a) => a.name || a.email || 'Someone');
  return names.length ? names.join(', ') : 'Quire';
}

function VersionActions({ docId, version, canEdit }: { docId: string; version: Version; canEdit: boolean }) {
  const client = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const [name, setName] = useState(version.name ?? '');
  const restore = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/api/v1/documents/{id}/versions/{version}/restore', {
          params: { path: { id: docId, version: version.version } },
        }),
      ),
    onSuccess: () => {
      setConfirming(false);
      void client.invalidateQueries({ queryKey: ['versions', docId] });
    },
  });
  const rename = useMutation({
    mutationFn: (n: string | null) =>
      unwrap(
        api.PATCH('/api/v1/documents/{id}/versions/{version}', {
          params: { path: { id: docId, version: version.version } },
          body: { name: n },
        }),
      ),
    onSuccess: () => void client.invalidateQueries({ queryKey: ['versions', docId] }),
  });
  return (
    <div className="version-actions">
      <div>
        <h2>
          Version {version.version}
          {version.name && <span className="badge version-name">{version.name}</span>}
        </h2>
        <p className="muted">
          {version.message} · {authorsOf(version)} · {new Date(version.created_at).toLocaleString()}
        </p>
      </div>
      {canEdit && (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            rename.mutate(name.trim() || null);
          }}
        >
          <label htmlFor="version-name" className="sr-only">
            Name of version {version.version}
          </label>
          <input id="version-name" placeholder="Name this version (e.g. Approved by legal)" maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
          <button className="secondary" type="submit" disabled={rename.isPending || name.trim() === (version.name ?? '')}>
            {name.trim() || !version.name ? 'Save name' : 'Clear name'}
          </button>
          <span className="grow" />
          {!confirming ? (
            <button className="secondary" type="button" onClick={() => setConfirming(true)}>
              Restore this version
            </button>
          ) : (
            <span className="confirm" role="group" aria-label="Confirm restoring">
              <span>The text becomes version {version.version}'s for everyone editing it.</span>
              <button className="primary" type="button" onClick={() => restore.mutate()} disabled={restore.isPending}>
                {restore.isPending ? 'Restoring…' : 'Restore'}
              </button>
              <button className="secondary" type="button" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </span>
          )}
        </form>
      )}
      {restore.isSuccess && (
        <p className="notice" role="status">
          Restored: the document is version {version.version}'s text again, as version {restore.data.version}.
        </p>
      )}
      <ErrorText error={rename.error ?? restore.error} />
    </div>
  );
}

function RenderedDiff({ docId, from, to }: { docId: string; from: string; to: string }) {
  const texts = useQuery({
    queryKey: ['diff-texts', docId, from, to],
    queryFn: async () => Promise.all([from ? textAt(docId, from) : Promise.resolve(''), textAt(docId, to)]),
    staleTime: from === 'current' ? 0 : Infinity,
  });
  const blocks = useMemo(() => {
    if (!texts.data) return [];
    const [a, b] = texts.data.map((t) => (t ? prdMarkdown().parse(t) : { type: 'doc', content: [] }));
    // The first version is shown as it was; "since the text now" reads from the version
    // towards today's text.
    if (!from) return (b!.content ?? []).map((block): DiffBlock => ({ kind: 'same', block }));
    return from === 'current' ? diffDocs(b!, a!) : diffDocs(a!, b!);
  }, [texts.data, from]);
  if (texts.isError) return <ErrorText error={texts.error} />;
  if (texts.isPending) return <p className="muted">Comparing…</p>;
  const counts = summary(blocks);
  return (
    <div className="rendered-diff-wrap">
      <p className="muted small-text diff-summary" data-testid="diff-summary">
        {!from
          ? 'The first version, as it was made.'
          : counts.added + counts.removed + counts.changed === 0
            ? 'No changes.'
          : `${counts.added} added, ${counts.changed} edited, ${counts.removed} removed`}
      </p>
      <article className="prose rendered-diff" aria-label="Changes">
        {blocks.map((b, i) => (
          <Block key={i} block={b} />
        ))}
      </article>
    </div>
  );
}

/** One block in the document's formatting (HTML from the same schema as the editor). */
function html(block: JSONContent): string {
  return prdHTML([block]);
}

function Block({ block }: { block: DiffBlock }) {
  if (block.kind !== 'changed') {
    return <div className={`diff-block diff-${block.kind}`} dangerouslySetInnerHTML={{ __html: html(block.block) }} />;
  }
  // An edited block: its kind of block, its words marked as added or removed.
  const Tag = block.block.type === 'heading' ? (`h${block.block.attrs?.level ?? 2}` as 'h2') : 'p';
  return (
    <div className="diff-block diff-changed">
      <Tag>
        {block.words.map((w, i) =>
          w.added ? <ins key={i}>{w.value}</ins> : w.removed ? <del key={i}>{w.value}</del> : <span key={i}>{w.value}</span>,
        )}
      </Tag>
    </div>
  );
}

import { useEffect, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type Document, type DocumentKind } from '../api/client';
import { Choice } from '../components/Choice';
import { ErrorText, Problem } from '../components/Problem';

export const kinds: { kind: DocumentKind; label: string }[] = [
  { kind: 'prd', label: 'PRD' },
  { kind: 'moodboard', label: 'Moodboard' },
  { kind: 'board-config', label: 'Board build' },
];

export function kindLabel(kind: DocumentKind) {
  return kinds.find((k) => k.kind === kind)?.label ?? kind;
}

const sorts = [
  { value: '-updated_at', label: 'Last changed' },
  { value: '-created_at', label: 'Newest' },
  { value: 'title', label: 'Title A–Z' },
];

const pageSize = 25;

/** "3 minutes ago", or the date for anything older than a week. */
export function ago(iso: string, now = Date.now()): string {
  const seconds = Math.round((now - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? '' : 's'} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} hour${hours === 1 ? '' : 's'} ago`;
  const days = Math.round(hours / 24);
  if (days < 7) return `${days} day${days === 1 ? '' : 's'} ago`;
  return new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** "in 3 days", "in 5 hours", for a time to come; "now" for one gone. */
export function until(iso: string, now = Date.now()): string {
  const minutes = Math.round((new Date(iso).getTime() - now) / 60_000);
  if (minutes <= 0) return 'now';
  if (minutes < 60) return `in ${minutes} minute${minutes === 1 ? '' : 's'}`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `in ${hours} hour${hours === 1 ? '' : 's'}`;
  const days = Math.round(hours / 24);
  return `in ${days} days`;
}

/** A workspace's documents: search by title, filter by kind, sort, pages, and the trash. */
export function Documents() {
  const { ws = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const kind = (params.get('kind') ?? '') as DocumentKind | '';
  const sort = params.get('sort') ?? '-updated_at';
  const trash = params.get('view') === 'trash';
  const q = params.get('q') ?? '';
  const [search, setSearch] = useState(q);
  // Cursors of the pages up to this one, so that "Previous" goes back; any change of
  // workspace, filter, sort or search starts again at the first page.
  const listing = JSON.stringify([ws, kind, sort, trash, q]);
  const [pages, setPages] = useState<{ listing: string; cursors: (string | undefined)[] }>({ listing, cursors: [undefined] });
  const cursors = pages.listing === listing ? pages.cursors : [undefined];
  const setCursors = (f: (c: (string | undefined)[]) => (string | undefined)[]) => setPages({ listing, cursors: f(cursors) });
  const cursor = cursors[cursors.length - 1];
  const client = useQueryClient();
  const navigate = useNavigate();

  // Typing searches after a pause.
  useEffect(() => {
    const t = setTimeout(() => {
      if (search === q) return;
      setParams((p) => {
        if (search) p.set('q', search);
        else p.delete('q');
        return p;
      });
    }, 250);
    return () => clearTimeout(t);
  }, [search, q, setParams]);

  const workspace = useQuery({
    queryKey: ['workspace', ws],
    queryFn: () => unwrap(api.GET('/api/v1/workspaces/{ws}', { params: { path: { ws } } })),
  });
  const listKey = ['documents', ws, { kind, sort, trash, q, cursor }];
  const documents = useQuery({
    queryKey: listKey,
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/workspaces/{ws}/documents', {
          params: {
            path: { ws },
            query: { kind: kind || undefined, sort, q: q || undefined, deleted: trash || undefined, limit: pageSize, cursor },
          },
        }),
      ),
    placeholderData: keepPreviousData,
  });

  const change = useMutation({
    mutationFn: async ({ doc, action }: { doc: Document; action: 'delete' | 'restore' }) => {
      const path = { params: { path: { id: doc.id } } };
      if (action === 'delete') await unwrap(api.DELETE('/api/v1/documents/{id}', path));
      else await unwrap(api.POST('/api/v1/documents/{id}/restore', path));
    },
    onSettled: () => client.invalidateQueries({ queryKey: ['documents', ws] }),
  });

  function set(key: string, value: string) {
    setParams((p) => {
      if (value) p.set(key, value);
      else p.delete(key);
      return p;
    });
  }

  if (workspace.isError) return <Problem error={workspace.error} retry={() => workspace.refetch()} />;

  return (
    <main className="page">
      <header className="page-header">
        <div>
          <h1>{workspace.data?.name ?? ' '}</h1>
          {workspace.data?.description && <p className="muted">{workspace.data.description}</p>}
        </div>
        <div className="row">
          <Link className="button secondary" to={`/w/${ws}/settings`}>
            Members and keys
          </Link>
          {!trash && (
            <NewDocument ws={ws} onCreated={(d) => navigate(`/w/${ws}/d/${d.id}${d.kind === 'prd' ? '?draft' : ''}`)} />
          )}
        </div>
      </header>

      <div className="tabs" role="tablist">
        <button role="tab" aria-selected={!trash} onClick={() => set('view', '')}>
          Documents
        </button>
        <button role="tab" aria-selected={trash} onClick={() => set('view', 'trash')}>
          Trash
        </button>
      </div>

      <div className="toolbar">
        <label className="search">
          <span className="sr-only">Search by title</span>
          <input type="search" placeholder="Search by title" value={search} onChange={(e) => setSearch(e.target.value)} />
        </label>
        <Choice
          label="Kind"
          value={kind}
          options={[{ value: '', label: 'All kinds' }, ...kinds.map((k) => ({ value: k.kind, label: k.label }))]}
          onChange={(v) => set('kind', v)}
        />
        <Choice label="Sort" value={sort} options={sorts} onChange={(v) => set('sort', v)} />
      </div>

      {documents.isError ? (
        <Problem error={documents.error} retry={() => documents.refetch()} />
      ) : documents.isPending ? (
        <p className="muted" aria-busy>
          Loading documents…
        </p>
      ) : documents.data.items.length === 0 ? (
        <div className="empty">
          {trash ? (
            <p>The trash is empty. Deleted documents stay here until they are purged.</p>
          ) : q || kind ? (
            <p>No documents match. Clear the search or the filter to see them all.</p>
          ) : (
            <p>No documents yet. Create the first one above.</p>
          )}
        </div>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Kind</th>
              <th scope="col">{trash ? 'Deleted' : 'Last changed'}</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {documents.data.items.map((d) => (
              <tr key={d.id}>
                <td>
                  {trash ? (
                    <span>{d.title || 'Untitled'}</span>
                  ) : (
                    <Link to={`/w/${ws}/d/${d.id}`}>{d.title || 'Untitled'}</Link>
                  )}
                </td>
                <td>
                  <span className={`badge kind-${d.kind}`}>{kindLabel(d.kind)}</span>
                </td>
                <td className="muted">
                  <time dateTime={trash ? (d.deleted_at ?? d.updated_at) : d.updated_at}>
                    {ago(trash ? (d.deleted_at ?? d.updated_at) : d.updated_at)}
                  </time>
                </td>
                <td className="actions">
                  <button
                    className="secondary small"
                    disabled={change.isPending}
                    aria-label={`${trash ? 'Restore' : 'Delete'} ${d.title || 'Untitled'}`}
                    onClick={() => change.mutate({ doc: d, action: trash ? 'restore' : 'delete' })}
                  >
                    {trash ? 'Restore' : 'Delete'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorText error={change.error} />
      <nav className="pager" aria-label="Pages">
        <button className="secondary small" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Previous
        </button>
        <span className="muted">Page {cursors.length}</span>
        <button
          className="secondary small"
          disabled={!documents.data?.next_cursor}
          onClick={() => setCursors((c) => [...c, documents.data?.next_cursor ?? undefined])}
        >
          Next
        </button>
      </nav>
    </main>
  );
}

function NewDocument({ ws, onCreated }: { ws: string; onCreated: (d: Document) => void }) {
  const [open, setOpen] = useState(false);
  const [title, setTitle] = useState('');
  const [kind, setKind] = useState<DocumentKind>('prd');
  const client = useQueryClient();
  const create = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/workspaces/{ws}/documents', { params: { path: { ws } }, body: { kind, title } })),
    onSuccess: (d) => {
      client.invalidateQueries({ queryKey: ['documents', ws] });
      onCreated(d);
    },
  });
  if (!open) {
    return (
      <button className="primary" onClick={() => setOpen(true)}>
        New document
      </button>
    );
  }
  function submit(e: FormEvent) {
    e.preventDefault();
    create.mutate();
  }
  return (
    <form
      className="new-document card"
      onSubmit={submit}
      aria-label="New document"
      onKeyDown={(e) => e.key === 'Escape' && setOpen(false)}
    >
      <label>
        Title
        <input value={title} onChange={(e) => setTitle(e.target.value)} autoFocus required />
      </label>
      <label>
        Kind
        <select value={kind} onChange={(e) => setKind(e.target.value as DocumentKind)}>
          {kinds.map((k) => (
            <option key={k.kind} value={k.kind}>
              {k.label}
            </option>
          ))}
        </select>
      </label>
      <ErrorText error={create.error} />
      <div className="row">
        <button className="primary" type="submit" disabled={create.isPending || !title.trim()}>
          Create
        </button>
        <button className="secondary" type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

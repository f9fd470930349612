import { Link, useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { Problem } from '../components/Problem';
import { ago, kindLabel } from './Documents';

/** One document: its title, kind and content as it is now. */
export function DocumentPage() {
  const { ws = '', id = '' } = useParams();
  const doc = useQuery({
    queryKey: ['document', id],
    queryFn: () => unwrap(api.GET('/api/v1/documents/{id}', { params: { path: { id } } })),
  });
  const content = useQuery({
    queryKey: ['document-text', id],
    queryFn: async () => {
      const response = await fetch(`/api/v1/documents/${encodeURIComponent(id)}/content?format=text`, {
        credentials: 'same-origin',
      });
      if (!response.ok) throw new Error(`Quire answered ${response.status} for this document's content.`);
      return response.text();
    },
    enabled: doc.isSuccess,
  });
  if (doc.isError) return <Problem error={doc.error} retry={() => doc.refetch()} />;
  return (
    <main className="page">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/w/${ws}`}>Documents</Link>
        <span aria-hidden>/</span>
        <span>{doc.data?.title}</span>
      </nav>
      <header className="page-header">
        <div>
          <h1>{doc.data?.title || 'Untitled'}</h1>
          {doc.data && (
            <p className="muted">
              <span className={`badge kind-${doc.data.kind}`}>{kindLabel(doc.data.kind)}</span> · changed{' '}
              {ago(doc.data.updated_at)}
            </p>
          )}
        </div>
      </header>
      {content.isError ? (
        <Problem error={content.error} retry={() => content.refetch()} />
      ) : (
        <article className="document-text">{content.data || <span className="muted">This document is empty.</span>}</article>
      )}
    </main>
  );
}

// A configuration's builds: the history, and one build followed live — its progress and
// stages, its log as Armbian printed it (colours kept), its artifacts with their checksums
// and download links, and Cancel while it runs.
import { useEffect, useRef, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { AnsiUp } from 'ansi_up';
import { api, unwrap } from '../api/client';
import { ErrorText, Problem as ProblemView } from '../components/Problem';
import { ago } from '../screens/Documents';
import { ENDED, SHOWN_LINES, appendLines, duration, size, statusWords, type BuildView, type Line } from './builds';

export function useBuilds(docId: string) {
  return useQuery({
    queryKey: ['builds', docId],
    queryFn: async () => (await unwrap(api.GET('/api/v1/documents/{id}/builds', { params: { path: { id: docId } } }))) as unknown as { items: BuildView[] },
    refetchInterval: (q) => (q.state.data?.items.some((b) => !ENDED.has(b.status)) ? 1500 : false),
  });
}

/** Starts a build of the configuration; answers it. */
export function useStartBuild(docId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async () =>
      (await unwrap(api.POST('/api/v1/documents/{id}/builds', { params: { path: { id: docId } }, body: {} }))) as unknown as BuildView,
    onSuccess: () => client.invalidateQueries({ queryKey: ['builds', docId] }),
  });
}

export function BuildsView({ docId, selected, onSelect }: { docId: string; selected?: string; onSelect: (id: string) => void }) {
  const builds = useBuilds(docId);
  const items = builds.data?.items ?? [];
  const current = selected ?? items[0]?.id;
  if (builds.isError) return <ProblemView error={builds.error} retry={() => builds.refetch()} />;
  return (
    <div className="builds">
      <nav className="builds-list card" aria-label="Builds">
        <h3>Builds</h3>
        {items.length === 0 && <p className="muted small">No builds yet. Build makes the image this configuration describes.</p>}
        <ul>
          {items.map((b) => (
            <li key={b.id}>
              <button className={`build-row${b.id === current ? ' active' : ''}`} onClick={() => onSelect(b.id)} aria-current={b.id === current}>
                <span className={`build-status status-${b.status}`}>{statusWords(b)}</span>
                <span className="muted small">
                  {ago(b.created_at)}
                  {b.data.duration_ms ? ` · ${duration(b.data.duration_ms)}` : ''}
                </span>
              </button>
            </li>
          ))}
        </ul>
      </nav>
      {current ? <Build key={current} id={current} /> : <div />}
    </div>
  );
}

function Build({ id }: { id: string }) {
  const client = useQueryClient();
  const build = useQuery({
    queryKey: ['build', id],
    queryFn: async () => (await unwrap(api.GET('/api/v1/builds/{id}', { params: { path: { id } } }))) as unknown as BuildView,
    refetchInterval: (q) => (q.state.data && ENDED.has(q.state.data.status) ? false : 1000),
  });
  const cancel = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/contexts/{id}/cancel', { params: { path: { id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ['build', id] }),
  });
  // The history beside it says the same once it ends.
  const ended = build.data ? ENDED.has(build.data.status) : false;
  useEffect(() => {
    if (ended) void client.invalidateQueries({ queryKey: ['builds'] });
  }, [ended, client]);
  if (build.isError) return <ProblemView error={build.error} retry={() => build.refetch()} />;
  const b = build.data;
  if (!b) return <p className="muted">Loading the build…</p>;
  const running = !ENDED.has(b.status);
  const percent = b.status === 'completed' ? 100 : (b.progress?.percent ?? 0);
  return (
    <section className="build" aria-label="Build" data-status={b.status}>
      <header className="build-head">
        <div>
          <h3>
            <span className={`build-status status-${b.status}`}>{statusWords(b)}</span>{' '}
            <span className="muted small">
              {b.data.config?.BOARD as string} · {b.data.config?.BRANCH as string} · {b.data.config?.RELEASE as string}
            </span>
          </h3>
          <p className="muted small">
            Started {ago(b.created_at)} against Armbian {b.data.schema_version}
            {b.data.duration_ms ? `, took ${duration(b.data.duration_ms)}` : ''}
            {b.data.warnings ? ` · ${b.data.warnings} warning${b.data.warnings === 1 ? '' : 's'}` : ''}
          </p>
        </div>
        <span className="grow" />
        <a className="button secondary small" href={`/api/v1/builds/${id}/log?format=text`} download>
          Download log
        </a>
        {running && (
          <button className="secondary small" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
            Cancel
          </button>
        )}
      </header>
      <ErrorText error={cancel.error} />
      {b.error && (
        <p className="error" role="alert">
          {b.error.message}
        </p>
      )}
      <div className="build-progress" role="progressbar" aria-valuenow={Math.round(percent)} aria-valuemin={0} aria-valuemax={100}>
        <div style={{ width: `${percent}%` }} />
      </div>
      <p className="small build-stage" data-testid="stage">
        {running ? (b.progress?.message ?? 'Waiting for a builder') : b.status === 'completed' ? 'Done' : ''}
      </p>
      {b.data.stages && b.data.stages.length > 0 && (
        <ol className="build-stages">
          {b.data.stages.map((s) => (
            <li key={s.line}>
              <span className="muted small">{s.at} s</span> {s.name}
            </li>
          ))}
        </ol>
      )}
      <Log id={id} />
      {b.data.artifacts && b.data.artifacts.length > 0 && (
        <table className="artifacts" aria-label="Artifacts">
          <thead>
            <tr>
              <th>File</th>
              <th>Size</th>
              <th>SHA-256</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {b.data.artifacts.map((a) => (
              <tr key={a.name}>
                <td className="artifact-name">{a.name}</td>
                <td>{size(a.size)}</td>
                <td>
                  <code title={a.sha256}>{a.sha256.slice(0, 16)}…</code>
                  {a.verified && <span className="verified" title="Matches the .sha Armbian wrote"> ✓ checked</span>}
                </td>
                <td>
                  <a className="button secondary small" href={`/api/v1/builds/${id}/artifacts/${encodeURIComponent(a.name)}`} download>
                    Download
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The log, followed live: the browser's EventSource reconnects by itself with the last
 * line's number, and the server goes on from the next line. */
function Log({ id }: { id: string }) {
  const [lines, setLines] = useState<Line[]>([]);
  const [ended, setEnded] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    // Colours carry from line to line, so each line is turned into HTML once, in order.
    const ansi = new AnsiUp();
    let last = 0;
    const source = new EventSource(`/api/v1/builds/${id}/log`);
    source.addEventListener('lines', (e) => {
      const fresh = (JSON.parse((e as MessageEvent).data) as Line[]).filter((l) => l[0] > last);
      if (!fresh.length) return;
      last = fresh[fresh.length - 1]![0];
      const html = fresh.map(([n, t, s, text]): Line => [n, t, s, ansi.ansi_to_html(text)]);
      setLines((shown) => appendLines(shown, html));
    });
    source.addEventListener('end', () => {
      setEnded(true);
      source.close();
    });
    return () => source.close();
  }, [id]);
  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  const cut = lines.length >= SHOWN_LINES;
  return (
    <div
      className="build-log"
      ref={box}
      role="log"
      aria-label="Build log"
      data-ended={ended}
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      }}
    >
      {cut && <div className="muted small">Earlier lines are in the downloaded log.</div>}
      {lines.map(([n, , s, text]) => (
        <div key={n} className={`log-line ${s}`}>
          <span className="log-n">{n}</span>
          {/* ansi_up escapes the text; only its colour spans are markup. */}
          <span dangerouslySetInnerHTML={{ __html: text || '&nbsp;' }} />
        </div>
      ))}
      {lines.length === 0 && <div className="muted">{ended ? 'This build printed nothing.' : 'Waiting for the build to start…'}</div>}
    </div>
  );
}

// A configuration's builds, as three panels: the history (with each waiting build's place in
// the queue), one build followed live — progress, the stage list as it grows, its log as
// Armbian printed it (colours kept), Cancel —, and that build's artifacts with their
// checksums and download links.
import { useEffect, useRef, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { ErrorText, Problem as ProblemView } from '../components/Problem';
import { ago } from '../screens/Documents';
import { useBuildStream } from './buildStream';
import { ENDED, SHOWN_LINES, duration, size, statusWords, type BuildView } from './builds';

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

/** One build as it stands, asked again every second until it ends (with its place in the
 * queue while it waits). */
function useBuild(id: string | undefined) {
  const client = useQueryClient();
  const build = useQuery({
    queryKey: ['build', id],
    enabled: Boolean(id),
    queryFn: async () => (await unwrap(api.GET('/api/v1/builds/{id}', { params: { path: { id: id! } } }))) as unknown as BuildView,
    refetchInterval: (q) => (q.state.data && ENDED.has(q.state.data.status) ? false : 1000),
  });
  // The history says the same once it ends.
  const ended = build.data ? ENDED.has(build.data.status) : false;
  useEffect(() => {
    if (ended) void client.invalidateQueries({ queryKey: ['builds'] });
  }, [ended, client]);
  return build;
}

/** The build a panel shows: the one chosen, or the newest. */
export function useShownBuild(docId: string, selected: string | undefined): string | undefined {
  const builds = useBuilds(docId);
  return selected ?? builds.data?.items[0]?.id;
}

export function BuildsList({ docId, shown, onSelect }: { docId: string; shown?: string; onSelect: (id: string) => void }) {
  const builds = useBuilds(docId);
  const items = builds.data?.items ?? [];
  if (builds.isError) return <ProblemView error={builds.error} retry={() => builds.refetch()} />;
  return (
    <nav className="builds-list" aria-label="Builds">
      {builds.isPending && <p className="muted small-text">Loading the builds…</p>}
      {builds.data && items.length === 0 && <p className="muted small-text">No builds yet. Build makes the image this configuration describes.</p>}
      <ul>
        {items.map((b) => (
          <li key={b.id}>
            <button className={`build-row${b.id === shown ? ' active' : ''}`} onClick={() => onSelect(b.id)} aria-current={b.id === shown}>
              <span className={`build-status status-${b.status}`}>{statusWords(b)}</span>
              <span className="muted small-text">
                {String(b.data.config?.BOARD ?? '')} · {ago(b.created_at)}
                {b.data.duration_ms ? ` · ${duration(b.data.duration_ms)}` : ''}
              </span>
            </button>
          </li>
        ))}
      </ul>
    </nav>
  );
}

export function BuildPanel({ id }: { id?: string }) {
  const client = useQueryClient();
  const build = useBuild(id);
  const stream = useBuildStream(id);
  const cancel = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/contexts/{id}/cancel', { params: { path: { id: id! } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ['build', id] }),
  });
  if (!id) return <p className="muted panel-empty">No build yet. Build (at the top) queues one; it is followed here.</p>;
  if (build.isError) return <ProblemView error={build.error} retry={() => build.refetch()} />;
  const b = build.data;
  if (!b) return <p className="muted">Loading the build…</p>;
  const running = !ENDED.has(b.status);
  const percent = b.status === 'completed' ? 100 : (b.progress?.percent ?? 0);
  // Live while it runs; the build's own record once it ended.
  const stages = stream.stages.length ? stream.stages : (b.data.stages ?? []);
  const current = running ? stages[stages.length - 1]?.line : undefined;
  return (
    <section className="build" aria-label="Build" data-status={b.status}>
      <header className="build-head">
        <div className="build-title">
          <h3>
            <span className={`build-status status-${b.status}`}>{statusWords(b)}</span>{' '}
            <span className="muted small-text">
              {String(b.data.config?.BOARD ?? '')} · {String(b.data.config?.BRANCH ?? '')} · {String(b.data.config?.RELEASE ?? '')}
            </span>
          </h3>
          <p className="muted small-text">
            Started {ago(b.created_at)} against Armbian {b.data.schema_version}
            {b.data.duration_ms ? `, took ${duration(b.data.duration_ms)}` : ''}
            {b.data.warnings ? ` · ${b.data.warnings} warning${b.data.warnings === 1 ? '' : 's'}` : ''}
          </p>
        </div>
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
      <p className="small-text build-stage" data-testid="stage">
        {running
          ? (stages[stages.length - 1]?.name ?? b.progress?.message ?? (b.status === 'pending' ? 'Waiting for a builder' : 'Starting'))
          : b.status === 'completed'
            ? 'Done'
            : ''}
      </p>
      <div className="build-body">
        {stages.length > 0 && (
          <ol className="build-stages" aria-label="Stages">
            {stages.map((s) => (
              <li key={s.line} className={s.line === current ? 'current' : undefined} aria-current={s.line === current ? 'step' : undefined}>
                <span className="muted small-text">{s.at} s</span> {s.name}
              </li>
            ))}
          </ol>
        )}
        <Log lines={stream.lines} ended={stream.ended} />
      </div>
    </section>
  );
}

function Log({ lines, ended }: { lines: ReturnType<typeof useBuildStream>['lines']; ended: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
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
      {cut && <div className="muted small-text">Earlier lines are in the downloaded log.</div>}
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

export function ArtifactsPanel({ id }: { id?: string }) {
  const build = useBuild(id);
  const b = build.data;
  if (!id) return <p className="muted panel-empty">The images a build makes are listed here, checked against their checksums.</p>;
  if (build.isError) return <ProblemView error={build.error} retry={() => build.refetch()} />;
  if (!b) return <p className="muted">Loading the build…</p>;
  const artifacts = b.data.artifacts ?? [];
  if (!artifacts.length) {
    return (
      <p className="muted panel-empty">
        {ENDED.has(b.status) ? 'This build kept no files.' : 'The images appear here when the build has made and checked them.'}
      </p>
    );
  }
  return (
    <ul className="artifacts" aria-label="Artifacts">
      {artifacts.map((a) => (
        <li key={a.name} className="artifact">
          <span className="artifact-name">{a.name}</span>
          <span className="artifact-meta muted small-text">
            {size(a.size)} · <code title={a.sha256}>{a.sha256.slice(0, 12)}…</code>
            {a.verified && <span className="verified" title="Matches the .sha Armbian wrote"> ✓ checked</span>}
          </span>
          <span className="artifact-actions">
            <a className="button secondary small" href={b.artifact_urls?.[a.name] ?? `/api/v1/builds/${id}/artifacts/${encodeURIComponent(a.name)}`} download>
              Download
            </a>
            {b.artifact_urls?.[a.name] && <CopyLink url={b.artifact_urls[a.name]!} />}
          </span>
        </li>
      ))}
    </ul>
  );
}

/** Copies a signed URL whole, for a device, a CI job or a colleague without a session. */
function CopyLink({ url }: { url: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      className="secondary small"
      title="A link that works without signing in, for a few hours"
      onClick={() =>
        void navigator.clipboard.writeText(new URL(url, window.location.origin).href).then(() => {
          setCopied(true);
          setTimeout(() => setCopied(false), 2000);
        })
      }
    >
      {copied ? 'Copied' : 'Copy link'}
    </button>
  );
}

// The signed-in person's account: who they are, and where they are signed in (each browser
// or device, with when it signed in), with a way to sign any of them out.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type Schemas } from '../api/client';
import { ErrorText, Problem } from '../components/Problem';
import { useMe } from '../session';
import { ago } from './Documents';

type Session = Schemas['SessionInfo'];

/** A browser's own description, shortened to what a person recognises. */
export function deviceOf(agent?: string | null): string {
  if (!agent) return 'Unknown device';
  const browser = /Edg\//.test(agent)
    ? 'Edge'
    : /Firefox\//.test(agent)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(agent)
        ? 'Chrome'
        : /Safari\//.test(agent)
          ? 'Safari'
          : /curl\//.test(agent)
            ? 'curl'
            : null;
  const system = /Windows/.test(agent)
    ? 'Windows'
    : /Android/.test(agent)
      ? 'Android'
      : /iPhone|iPad/.test(agent)
        ? 'iOS'
        : /Mac OS X/.test(agent)
          ? 'macOS'
          : /Linux/.test(agent)
            ? 'Linux'
            : null;
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? agent.slice(0, 60);
}

export function Account() {
  const me = useMe();
  const client = useQueryClient();
  const sessions = useQuery({
    queryKey: ['sessions'],
    queryFn: () => unwrap(api.GET('/api/v1/me/sessions')),
  });
  const end = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE('/api/v1/me/sessions/{id}', { params: { path: { id } } })),
    onSettled: () => client.invalidateQueries({ queryKey: ['sessions'] }),
  });
  const endOthers = useMutation({
    mutationFn: async (others: Session[]) => {
      for (const s of others) await unwrap(api.DELETE('/api/v1/me/sessions/{id}', { params: { path: { id: s.id } } }));
    },
    onSettled: () => client.invalidateQueries({ queryKey: ['sessions'] }),
  });
  if (sessions.isError) return <Problem error={sessions.error} retry={() => sessions.refetch()} />;
  const others = (sessions.data ?? []).filter((s) => !s.current);
  return (
    <main className="page">
      <header className="page-header">
        <div>
          <h1>Your account</h1>
          <p className="muted">
            {me.data?.name} · {me.data?.email}
          </p>
        </div>
      </header>
      <section className="settings-section" aria-labelledby="sessions-heading">
        <div className="row">
          <h2 id="sessions-heading">Where you are signed in</h2>
          <span className="grow" />
          {others.length > 0 && (
            <button className="secondary small" onClick={() => endOthers.mutate(others)} disabled={endOthers.isPending}>
              Sign out everywhere else
            </button>
          )}
        </div>
        {sessions.isPending ? (
          <p className="muted">Loading…</p>
        ) : (
          <ul className="plain-list sessions">
            {sessions.data.map((s) => (
              <li key={s.id} className="row">
                <span className="grow">
                  <strong>{deviceOf(s.user_agent)}</strong>
                  {s.current && <span className="badge current-session">This browser</span>}
                  <br />
                  <span className="muted small-text">
                    Signed in {ago(s.created_at)}
                    {s.ip ? ` from ${s.ip}` : ''} · until {new Date(s.expires_at).toLocaleDateString()}
                  </span>
                </span>
                {!s.current && (
                  <button className="secondary small" onClick={() => end.mutate(s.id)} disabled={end.isPending}>
                    Sign out
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
        <ErrorText error={end.error ?? endOthers.error} />
      </section>
    </main>
  );
}

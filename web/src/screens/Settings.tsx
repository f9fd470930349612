import { useState, type FormEvent, type ReactNode } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type Schemas } from '../api/client';
import { Choice } from '../components/Choice';
import { ErrorText, Problem } from '../components/Problem';
import { workspacesKey } from '../components/Shell';
import { useMe } from '../session';
import { ago, until } from './Documents';

type Role = Schemas['Role'];
const roles: { role: Role; label: string }[] = [
  { role: 'viewer', label: 'Viewer' },
  { role: 'editor', label: 'Editor' },
  { role: 'admin', label: 'Admin' },
  { role: 'owner', label: 'Owner' },
];
const rolesSaid =
  'Viewers read documents; editors also edit them and run pipelines; admins also manage members, invitations and keys; owners can also delete the workspace.';

/** A workspace's people and access: members and their roles, invitations, API keys. */
export function Settings() {
  const { ws = '' } = useParams();
  const workspace = useQuery({
    queryKey: ['workspace', ws],
    queryFn: () => unwrap(api.GET('/api/v1/workspaces/{ws}', { params: { path: { ws } } })),
  });
  if (workspace.isError) return <Problem error={workspace.error} retry={() => workspace.refetch()} />;
  return (
    <main className="page">
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/w/${ws}`}>Documents</Link>
        <span aria-hidden>/</span>
        <span>Settings</span>
      </nav>
      <header className="page-header">
        <h1>{workspace.data?.name ?? ' '} settings</h1>
      </header>
      <Members ws={ws} />
      <Invitations ws={ws} />
      <ApiKeys ws={ws} />
    </main>
  );
}

function Section({ title, intro, children }: { title: string; intro: string; children: ReactNode }) {
  return (
    <section className="settings-section card" aria-label={title}>
      <h2>{title}</h2>
      <p className="muted">{intro}</p>
      {children}
    </section>
  );
}

function RoleSelect({ value, onChange, label, without = [] }: { value: Role; onChange: (r: Role) => void; label: string; without?: Role[] }) {
  const options = roles.filter((r) => !without.includes(r.role)).map((r) => ({ value: r.role, label: r.label }));
  return <Choice label={label} value={value} options={options} onChange={(v) => onChange(v as Role)} />;
}

function Members({ ws }: { ws: string }) {
  const me = useMe();
  const client = useQueryClient();
  const key = ['members', ws];
  const members = useQuery({
    queryKey: key,
    queryFn: () => unwrap(api.GET('/api/v1/workspaces/{ws}/members', { params: { path: { ws } } })),
  });
  const change = useMutation({
    mutationFn: async ({ user, role }: { user: string; role: Role | null }) => {
      const path = { params: { path: { ws, user_id: user } } };
      if (role) await unwrap(api.PUT('/api/v1/workspaces/{ws}/members/{user_id}', { ...path, body: { role } }));
      else await unwrap(api.DELETE('/api/v1/workspaces/{ws}/members/{user_id}', path));
    },
    onSettled: () => client.invalidateQueries({ queryKey: key }),
  });
  return (
    <Section title="Members" intro={rolesSaid}>
      {members.isError ? (
        <Problem error={members.error} retry={() => members.refetch()} />
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {members.data?.map((m) => {
              const self = m.user_id === me.data?.id;
              return (
                <tr key={m.user_id}>
                  <td>
                    {m.name}
                    {self && <span className="muted"> (you)</span>}
                  </td>
                  <td className="muted">{m.email}</td>
                  <td>
                    <RoleSelect
                      label={`Role of ${m.name}`}
                      value={m.role}
                      onChange={(role) => change.mutate({ user: m.user_id, role })}
                    />
                  </td>
                  <td className="actions">
                    <button
                      className="secondary small"
                      aria-label={self ? 'Leave the workspace' : `Remove ${m.name}`}
                      onClick={() => {
                        const question = self ? 'Leave this workspace?' : `Remove ${m.name} from this workspace?`;
                        if (window.confirm(question)) change.mutate({ user: m.user_id, role: null });
                      }}
                    >
                      {self ? 'Leave' : 'Remove'}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <ErrorText error={change.error} />
    </Section>
  );
}

/** A secret shown once, with a way to copy it. */
function ShownOnce({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="shown-once" role="status">
      <p>
        <strong>{label}</strong> It is shown only now.
      </p>
      <div className="row">
        <input readOnly value={value} aria-label={label} onFocus={(e) => e.currentTarget.select()} />
        <button
          className="secondary small"
          onClick={async () => {
            await navigator.clipboard?.writeText(value).catch(() => undefined);
            setCopied(true);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button className="secondary small" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

function Invitations({ ws }: { ws: string }) {
  const client = useQueryClient();
  const key = ['invitations', ws];
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('editor');
  const [link, setLink] = useState<string | null>(null);
  const invitations = useQuery({
    queryKey: key,
    queryFn: () => unwrap(api.GET('/api/v1/workspaces/{ws}/invitations', { params: { path: { ws } } })),
  });
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/api/v1/workspaces/{ws}/invitations', {
          params: { path: { ws } },
          body: { role, email: email.trim() || null },
        }),
      ),
    onSuccess: (created) => {
      setLink(`${window.location.origin}/join?token=${encodeURIComponent(created.token)}`);
      setEmail('');
      client.invalidateQueries({ queryKey: key });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE('/api/v1/workspaces/{ws}/invitations/{id}', { params: { path: { ws, id } } })),
    onSettled: () => client.invalidateQueries({ queryKey: key }),
  });
  const open = invitations.data?.filter((i) => !i.accepted_at) ?? [];
  return (
    <Section title="Invitations" intro="Invite people by link; a link for one address works only for that address.">
      <form
        className="row"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <label className="inline-label grow">
          <span className="sr-only">Invitee's email (optional)</span>
          <input type="email" placeholder="Email (optional)" value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <RoleSelect label="Role for the invitee" value={role} onChange={setRole} without={['owner']} />
        <button className="primary" type="submit" disabled={create.isPending}>
          Create invitation
        </button>
      </form>
      <ErrorText error={create.error} />
      {link && <ShownOnce label="Invitation link:" value={link} onDone={() => setLink(null)} />}
      {open.length > 0 && (
        <ul className="plain-list">
          {open.map((i) => (
            <li key={i.id}>
              <span>
                {i.email ?? 'Anyone with the link'} · {roles.find((r) => r.role === i.role)?.label} ·{' '}
                <span className="muted">expires {until(i.expires_at)}</span>
              </span>
              <button className="secondary small" aria-label={`Revoke the invitation for ${i.email ?? 'anyone'}`} onClick={() => revoke.mutate(i.id)}>
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function ApiKeys({ ws }: { ws: string }) {
  const client = useQueryClient();
  const key = ['api-keys', ws];
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('editor');
  const [secret, setSecret] = useState<string | null>(null);
  const keys = useQuery({
    queryKey: key,
    queryFn: () => unwrap(api.GET('/api/v1/workspaces/{ws}/api-keys', { params: { path: { ws } } })),
  });
  const create = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/workspaces/{ws}/api-keys', { params: { path: { ws } }, body: { name: name.trim(), role } })),
    onSuccess: (created) => {
      setSecret(created.secret);
      setName('');
      client.invalidateQueries({ queryKey: key });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE('/api/v1/workspaces/{ws}/api-keys/{id}', { params: { path: { ws, id } } })),
    onSettled: () => client.invalidateQueries({ queryKey: key }),
  });
  const active = keys.data?.filter((k) => !k.revoked_at) ?? [];
  return (
    <Section title="API keys" intro="Keys let scripts and the pipeline API act in this workspace, with the role you give them.">
      <form
        className="row"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          if (name.trim()) create.mutate();
        }}
      >
        <label className="inline-label grow">
          <span className="sr-only">Key name</span>
          <input placeholder="Key name, e.g. CI pipeline" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <RoleSelect label="Role for the key" value={role} onChange={setRole} without={['owner']} />
        <button className="primary" type="submit" disabled={create.isPending || !name.trim()}>
          Create key
        </button>
      </form>
      <ErrorText error={create.error} />
      {secret && <ShownOnce label="New API key:" value={secret} onDone={() => setSecret(null)} />}
      {active.length > 0 && (
        <ul className="plain-list">
          {active.map((k) => (
            <li key={k.id}>
              <span>
                <strong>{k.name}</strong> · <code>{k.prefix}…</code> · {roles.find((r) => r.role === k.role)?.label} ·{' '}
                <span className="muted">{k.last_used_at ? `used ${ago(k.last_used_at)}` : 'never used'}</span>
              </span>
              <button className="secondary small" aria-label={`Revoke the key ${k.name}`} onClick={() => revoke.mutate(k.id)}>
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

/** `/join?token=…`: an invitation link. Signed in, it joins; otherwise it offers both ways in. */
export function Join() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const me = useMe();
  const navigate = useNavigate();
  const client = useQueryClient();
  const accept = useMutation({
    mutationFn: () => unwrap(api.POST('/api/v1/invitations/accept', { body: { token } })),
    onSuccess: async (member) => {
      await client.invalidateQueries({ queryKey: workspacesKey });
      const list = await client.fetchQuery({
        queryKey: workspacesKey,
        queryFn: () => unwrap(api.GET('/api/v1/workspaces', { params: { query: { limit: 200 } } })),
      });
      const joined = list.items.find((w) => w.id === member.workspace_id);
      navigate(joined ? `/w/${joined.slug}` : '/', { replace: true });
    },
  });
  const here = `/join?token=${encodeURIComponent(token)}`;
  return (
    <main className="center-page">
      <div className="card narrow auth">
        <h1>Join a workspace</h1>
        {!token ? (
          <p className="error" role="alert">
            This invitation link is incomplete. Ask for a new one.
          </p>
        ) : me.data ? (
          <>
            <p>You were invited to a workspace on Quire. Join it as {me.data.name}?</p>
            <ErrorText error={accept.error} />
            <button className="primary" onClick={() => accept.mutate()} disabled={accept.isPending}>
              Join
            </button>
          </>
        ) : (
          <>
            <p>You were invited to a workspace on Quire.</p>
            <Link className="button primary" to={`/signup?invitation=${encodeURIComponent(token)}`}>
              Create an account to join
            </Link>
            <Link className="button secondary" to={`/signin?next=${encodeURIComponent(here)}`}>
              I have an account: sign in
            </Link>
          </>
        )}
      </div>
    </main>
  );
}

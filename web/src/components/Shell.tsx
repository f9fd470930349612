import { useState, type FormEvent } from 'react';
import { Link, NavLink, Outlet, useNavigate } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type Workspace } from '../api/client';
import { useMe, useSignOut } from '../session';
import { ErrorText, Problem } from './Problem';

export const workspacesKey = ['workspaces'] as const;

export function useWorkspaces() {
  return useQuery({
    queryKey: workspacesKey,
    queryFn: () => unwrap(api.GET('/api/v1/workspaces', { params: { query: { limit: 200 } } })),
  });
}

/** The frame around every signed-in screen: workspaces on the left, the account below. */
export function Shell() {
  const me = useMe();
  const workspaces = useWorkspaces();
  const signOut = useSignOut();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Workspaces">
        <NavLink to="/" className="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} />
          <span>Quire</span>
        </NavLink>
        <div className="sidebar-heading">
          <span>Workspaces</span>
          <button className="icon" aria-label="New workspace" title="New workspace" onClick={() => setCreating(true)}>
            +
          </button>
        </div>
        {workspaces.isError && <Problem error={workspaces.error} retry={() => workspaces.refetch()} />}
        <ul className="nav-list">
          {workspaces.data?.items.map((w) => (
            <li key={w.id}>
              <NavLink to={`/w/${w.slug}`}>{w.name}</NavLink>
            </li>
          ))}
        </ul>
        {creating && (
          <NewWorkspace
            onDone={(w) => {
              setCreating(false);
              if (w) navigate(`/w/${w.slug}`);
            }}
          />
        )}
        <Link className="sidebar-link" to="/graphql" title="Explore Quire's GraphQL API">
          GraphQL explorer
        </Link>
        <div className="account">
          <Link className="who" to="/account" title="Your account and sessions">
            <span className="avatar" aria-hidden>
              {(me.data?.name ?? '?').slice(0, 1).toUpperCase()}
            </span>
            <span className="who-text">
              <strong>{me.data?.name}</strong>
              <span className="muted">{me.data?.email}</span>
            </span>
          </Link>
          <button
            className="secondary small"
            onClick={async () => {
              await signOut();
              navigate('/signin', { replace: true });
            }}
          >
            Sign out
          </button>
        </div>
      </nav>
      <div className="content">
        <Outlet />
      </div>
    </div>
  );
}

function NewWorkspace({ onDone }: { onDone: (w?: Workspace) => void }) {
  const [name, setName] = useState('');
  const client = useQueryClient();
  const create = useMutation({
    mutationFn: (n: string) => unwrap(api.POST('/api/v1/workspaces', { body: { name: n } })),
    onSuccess: (w) => {
      client.invalidateQueries({ queryKey: workspacesKey });
      onDone(w);
    },
  });
  function submit(e: FormEvent) {
    e.preventDefault();
    if (name.trim()) create.mutate(name.trim());
  }
  return (
    <form className="inline-form" onSubmit={submit}>
      <label className="sr-only" htmlFor="new-workspace">
        Workspace name
      </label>
      <input
        id="new-workspace"
        placeholder="Workspace name"
        value={name}
        onChange={(e) => setName(e.target.value)}
        onKeyDown={(e) => e.key === 'Escape' && onDone()}
        autoFocus
      />
      <ErrorText error={create.error} />
      <div className="row">
        <button className="primary small" type="submit" disabled={create.isPending}>
          Create
        </button>
        <button className="secondary small" type="button" onClick={() => onDone()}>
          Cancel
        </button>
      </div>
    </form>
  );
}

import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../api/client';
import { meKey, safeNext, signIn, signUp } from '../session';

/** Sign in, or create an account (`mode`), then go where the person was headed. */
export function AuthScreen({ mode }: { mode: 'signin' | 'signup' }) {
  const [params] = useSearchParams();
  const next = safeNext(params.get('next'));
  const invitation = params.get('invitation') ?? '';
  const navigate = useNavigate();
  const client = useQueryClient();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const providers = useQuery({
    queryKey: ['sso-providers'],
    queryFn: async () => (await api.GET('/api/v1/auth/sso')).data ?? [],
    staleTime: Infinity,
  });
  const ssoError = params.get('error');

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const user = mode === 'signin' ? await signIn(email, password) : await signUp(name, email, password, invitation);
      client.setQueryData(meKey, user);
      navigate(next, { replace: true });
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'network', String(err)));
    } finally {
      setBusy(false);
    }
  }

  const other = mode === 'signin' ? '/signup' : '/signin';
  const keep = new URLSearchParams();
  if (next !== '/') keep.set('next', next);
  if (invitation) keep.set('invitation', invitation);
  const query = keep.toString() ? `?${keep}` : '';

  return (
    <main className="center-page">
      <form className="card narrow auth" onSubmit={submit} noValidate>
        <div className="brand">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <span>Quire</span>
        </div>
        <h1>{mode === 'signin' ? 'Sign in' : 'Create your account'}</h1>
        {ssoError && <p className="error" role="alert">Single sign-on failed: {ssoError}</p>}
        {mode === 'signup' && (
          <label>
            Name
            <input value={name} onChange={(e) => setName(e.target.value)} autoComplete="name" required autoFocus />
          </label>
        )}
        <label>
          Email
          <input
            type="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            autoComplete="email"
            required
            autoFocus={mode === 'signin'}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete={mode === 'signin' ? 'current-password' : 'new-password'}
            minLength={8}
            required
          />
          {mode === 'signup' && <span className="hint">At least 8 characters.</span>}
        </label>
        {error && (
          <p className="error" role="alert">
            {error.message}
          </p>
        )}
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'One moment…' : mode === 'signin' ? 'Sign in' : 'Create account'}
        </button>
        {(providers.data?.length ?? 0) > 0 && (
          <div className="sso">
            <span className="muted">or</span>
            {providers.data!.map((p) => (
              <a
                key={p.id}
                className="button secondary"
                href={`${p.start_url}?redirect=${encodeURIComponent(next)}`}
              >
                Continue with {p.name}
              </a>
            ))}
          </div>
        )}
        <p className="muted switch">
          {mode === 'signin' ? 'New to Quire? ' : 'Already have an account? '}
          <Link to={other + query}>{mode === 'signin' ? 'Create an account' : 'Sign in'}</Link>
        </p>
      </form>
    </main>
  );
}

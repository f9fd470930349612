// Who is signed in: the `/api/v1/me` query, and the actions that change it.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type User } from './api/client';

export const meKey = ['me'] as const;

/** The signed-in user; `null` when nobody is. */
export function useMe() {
  return useQuery({
    queryKey: meKey,
    queryFn: async (): Promise<User | null> => {
      const { data, response } = await api.GET('/api/v1/me');
      if (response.status === 401) return null;
      if (!response.ok || !data) throw new Error(`Quire answered ${response.status} for your account.`);
      return data.user ?? null;
    },
    staleTime: 60_000,
  });
}

export function useSignOut() {
  const client = useQueryClient();
  return async () => {
    await api.POST('/api/v1/auth/logout').catch(() => undefined);
    client.setQueryData(meKey, null);
    client.removeQueries({ predicate: (q) => q.queryKey[0] !== 'me' });
  };
}

export async function signIn(email: string, password: string): Promise<User> {
  const session = await unwrap(api.POST('/api/v1/auth/login', { body: { email, password, cookie: true } }));
  return session.user;
}

export async function signUp(name: string, email: string, password: string, invitation?: string): Promise<User> {
  const session = await unwrap(
    api.POST('/api/v1/auth/signup', { body: { name, email, password, cookie: true, invitation: invitation || null } }),
  );
  return session.user;
}

/** Only paths of this app: never another origin (`//evil`, `/\evil`). */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  return next;
}

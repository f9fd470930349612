import { lazy, Suspense, useEffect } from 'react';
import { createBrowserRouter, Navigate, Outlet, RouterProvider, useLocation, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { whenSignedOut } from './api/client';
import { Shell, useWorkspaces } from './components/Shell';
import { Problem } from './components/Problem';
import { AuthScreen } from './screens/Auth';
import { Documents } from './screens/Documents';
import { DocumentPage } from './screens/DocumentPage';
import { Join, Settings } from './screens/Settings';
import { Account } from './screens/Account';
import { meKey, safeNext, useMe } from './session';

// Version history renders with the editor's schema: loaded with it, not with the lists.
const HistoryPage = lazy(() => import('./history/HistoryPage').then((m) => ({ default: m.HistoryPage })));
// GraphiQL is large: loaded when the explorer is opened.
const GraphiQLPage = lazy(() => import('./graphql/GraphiQLPage').then((m) => ({ default: m.GraphiQLPage })));

/** Signed-in screens: anyone else goes to sign in, and comes back here after. */
function RequireUser() {
  const me = useMe();
  const location = useLocation();
  const navigate = useNavigate();
  const client = useQueryClient();
  useEffect(() => {
    // A session that ends while the app is open (signed out elsewhere, expired) leads to
    // sign-in and back.
    whenSignedOut(() => {
      client.setQueryData(meKey, null);
      const here = window.location.pathname + window.location.search;
      navigate(`/signin?next=${encodeURIComponent(here)}`, { replace: true });
    });
  }, [client, navigate]);
  if (me.isPending) return <p className="loading muted">Loading…</p>;
  if (me.isError) return <Problem error={me.error} retry={() => me.refetch()} />;
  if (!me.data) {
    const next = location.pathname + location.search;
    return <Navigate to={next === '/' ? '/signin' : `/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  return <Outlet />;
}

/** Signed in already: the sign-in screens lead on to the app. */
function GuestOnly() {
  const me = useMe();
  const location = useLocation();
  if (me.data) {
    return <Navigate to={safeNext(new URLSearchParams(location.search).get('next'))} replace />;
  }
  return <Outlet />;
}

/** `/`: the first workspace, or a word on making one. */
function Home() {
  const workspaces = useWorkspaces();
  if (workspaces.isPending) return <p className="loading muted">Loading…</p>;
  if (workspaces.isError) return <Problem error={workspaces.error} retry={() => workspaces.refetch()} />;
  const first = workspaces.data.items[0];
  if (first) return <Navigate to={`/w/${first.slug}`} replace />;
  return (
    <main className="page">
      <div className="empty">
        <h1>No workspace yet</h1>
        <p>Create one with the + beside “Workspaces”, or ask a colleague to invite you to theirs.</p>
      </div>
    </main>
  );
}

function NotFound() {
  return (
    <main className="page">
      <div className="problem" role="alert">
        <h1>Page not found</h1>
        <p>There is nothing at this address.</p>
        <a href="/">Go to your workspaces</a>
      </div>
    </main>
  );
}

const router = createBrowserRouter([
  // An invitation link works signed in or not.
  { path: '/join', element: <Join /> },
  {
    element: <GuestOnly />,
    children: [
      { path: '/signin', element: <AuthScreen mode="signin" /> },
      { path: '/signup', element: <AuthScreen mode="signup" /> },
    ],
  },
  {
    element: <RequireUser />,
    children: [
      {
        element: <Shell />,
        children: [
          { path: '/', element: <Home /> },
          { path: '/w/:ws', element: <Documents /> },
          { path: '/w/:ws/d/:id', element: <DocumentPage /> },
          {
            path: '/w/:ws/d/:id/history',
            element: (
              <Suspense fallback={<p className="loading muted">Loading…</p>}>
                <HistoryPage />
              </Suspense>
            ),
          },
          { path: '/w/:ws/settings', element: <Settings /> },
          { path: '/account', element: <Account /> },
          {
            path: '/graphql',
            element: (
              <Suspense fallback={<p className="loading muted">Opening the GraphQL explorer…</p>}>
                <GraphiQLPage />
              </Suspense>
            ),
          },
          { path: '*', element: <NotFound /> },
        ],
      },
    ],
  },
]);

export function App() {
  return <RouterProvider router={router} />;
}

// The GraphQL explorer: GraphiQL on Quire's own GraphQL API, in the signed-in person's name
// (the session cookie, the CSRF token echoed), subscriptions over graphql-transport-ws.
// Loaded only when opened: GraphiQL is large.
import { useMemo } from 'react';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import 'graphiql/style.css';
import { readCookie } from '../api/client';

/** A first query that shows what the API holds. */
export const FIRST_QUERY = `# Quire's GraphQL API: the same data and permissions as the REST API.
# Ctrl+Enter runs; the Docs panel lists every type and field.
{
  me { id name }
  workspaces(first: 5) {
    name
    documents(kind: "board-config", first: 5) {
      id
      title
      boardConfig {
        settings
        validation { valid problems { path message } }
        builds(first: 3) { id status durationMs }
      }
    }
  }
}
`;

export function GraphiQLPage() {
  const fetcher = useMemo(
    () =>
      createGraphiQLFetcher({
        url: '/api/v1/graphql',
        // The session cookie goes along; a state-changing call carries the CSRF token.
        fetch: (input, init) =>
          fetch(input, {
            ...init,
            credentials: 'same-origin',
            headers: { ...(init?.headers as Record<string, string>), 'X-CSRF-Token': readCookie('quire_csrf') ?? '' },
          }),
        wsClient: createClient({
          url: `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/api/v1/graphql/ws`,
          lazy: true,
        }),
      }),
    [],
  );
  return (
    <main className="page graphiql-page">
      <header className="page-header">
        <div>
          <h1>GraphQL explorer</h1>
          <p className="muted">
            Queries, mutations and subscriptions on <code>/api/v1/graphql</code>, as you. Programs use an API key as a bearer
            token; the schema is at <a href="/api/v1/graphql/schema">/api/v1/graphql/schema</a>.
          </p>
        </div>
      </header>
      <div className="graphiql-frame">
        <GraphiQL fetcher={fetcher} defaultQuery={FIRST_QUERY} />
      </div>
    </main>
  );
}

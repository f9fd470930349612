// One document's live connection: its Yjs document, kept in IndexedDB (so nothing typed is
// lost offline or on reload) and synced over Quire's /collab socket, with a status a person
// can read: saved (the server has every local change), saving, offline, or ended.
import * as Y from 'yjs';
import * as syncProtocol from 'y-protocols/sync';
import * as encoding from 'lib0/encoding';
import { IndexeddbPersistence } from 'y-indexeddb';
import { WebsocketProvider } from 'y-websocket';
import { createStore, type StoreApi } from 'zustand/vanilla';
import { refreshSession } from '../api/client';

export type SaveState = 'loading' | 'saved' | 'saving' | 'offline' | 'ended';

export interface CollabState {
  save: SaveState;
  /** Why the connection ended for good (no access), when it did. */
  ended?: string;
}

export interface Peer {
  clientId: number;
  id: string;
  name: string;
  color: string;
  section?: string;
  /** Typed in the last minute (else only reading). */
  editing: boolean;
  /** The tab is hidden, or nothing was typed or clicked for five minutes. */
  away: boolean;
}

export interface Collab {
  doc: Y.Doc;
  provider: WebsocketProvider;
  status: StoreApi<CollabState>;
  destroy: () => void;
}

/** Close codes of Quire's collaboration socket (crates/quire-server/src/routes/collab.rs). */
export const CLOSE_EXPIRED = 4401;
export const CLOSE_NO_ACCESS = 4403;

const palette = ['#d9480f', '#2b8a3e', '#1971c2', '#9c36b5', '#c2255c', '#0c8599', '#e67700', '#5f3dc4'];

/** A steady colour per user, the same in every browser. */
export function colorFor(id: string): string {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return palette[h % palette.length]!;
}

/** Where the socket of `docId` is, on the page's own origin. */
export function socketBase(location: Location = window.location): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/collab`;
}

export function openCollab(docId: string, user: { id: string; name: string }): Collab {
  const doc = new Y.Doc();
  const status = createStore<CollabState>(() => ({ save: 'loading' }));
  const local = new IndexeddbPersistence(`quire-doc-${docId}`, doc);
  const provider = new WebsocketProvider(socketBase(), docId, doc, {
    maxBackoffTime: 10_000,
    // 4401 (the session expired) is retried after a refresh; 4403 (no access) ends it.
    shouldReconnect: (event) => event.code !== CLOSE_NO_ACCESS && event.code !== CLOSE_EXPIRED,
  });
  provider.awareness.setLocalStateField('user', { id: user.id, name: user.name, color: colorFor(user.id) });

  // Local changes not yet confirmed by the server. The server handles a socket's messages in
  // order and stores each change before it answers, so the answer to a sync request sent
  // after a change proves that change is stored.
  let edits = 0;
  let confirmedUpTo = 0;
  let requestedAt = -1;
  // Whether a confirmation was answered on this connection: the first sync answer of a
  // connection may come before the server took up the changes this client sent it on
  // connecting (those it kept in IndexedDB while offline, too), so one more is asked.
  let confirmedOnThisConnection = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const show = () => {
    if (status.getState().save === 'ended') return;
    const pending = edits > confirmedUpTo || !confirmedOnThisConnection;
    const save: SaveState = !provider.wsconnected ? 'offline' : pending || !provider.synced ? 'saving' : 'saved';
    status.setState({ save });
  };
  const requestConfirmation = () => {
    const ws = provider.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !provider.synced) return;
    requestedAt = edits;
    provider.synced = false;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0); // messageSync
    syncProtocol.writeSyncStep1(encoder, doc);
    ws.send(encoding.toUint8Array(encoder));
  };
  doc.on('update', (_update: Uint8Array, origin: unknown) => {
    if (origin === provider || origin === local) return;
    edits++;
    show();
    clearTimeout(timer);
    timer = setTimeout(requestConfirmation, 250);
  });
  provider.on('sync', (synced: boolean) => {
    if (!synced) return show();
    if (requestedAt >= 0) {
      confirmedUpTo = Math.max(confirmedUpTo, requestedAt);
      confirmedOnThisConnection = true;
      requestedAt = -1;
    }
    if (edits > confirmedUpTo || !confirmedOnThisConnection) setTimeout(requestConfirmation, 0);
    show();
  });
  provider.on('status', () => {
    requestedAt = -1;
    confirmedOnThisConnection = false;
    show();
  });
  provider.on('connection-close', () => show());
  provider.on('closed', async ({ code }: { code: number }) => {
    if (code === CLOSE_EXPIRED && (await refreshSession())) {
      provider.connect();
      return;
    }
    status.setState({
      save: 'ended',
      ended:
        code === CLOSE_NO_ACCESS
          ? 'You no longer have access to this document.'
          : 'Your session ended. Sign in again to keep editing; what you typed is kept on this device.',
    });
  });

  return {
    doc,
    provider,
    status,
    destroy: () => {
      clearTimeout(timer);
      provider.destroy();
      void local.destroy();
      doc.destroy();
    },
  };
}

/** Open connections by document and user, shared by the components that show them. */
const open = new Map<string, { collab: Collab; users: number; timer?: ReturnType<typeof setTimeout> }>();

function closeLater(key: string, after: number) {
  const entry = open.get(key);
  if (!entry) return;
  clearTimeout(entry.timer);
  entry.timer = setTimeout(() => {
    if (entry.users > 0) return;
    entry.collab.destroy();
    open.delete(key);
  }, after);
}

/** The connection of `docId` for `user`, opened on first use. Callable while rendering; a
 * connection nobody `retain`s closes by itself. */
export function collabFor(docId: string, user: { id: string; name: string }): Collab {
  const key = `${docId}\n${user.id}`;
  let entry = open.get(key);
  if (!entry) {
    entry = { collab: openCollab(docId, user), users: 0 };
    open.set(key, entry);
    closeLater(key, 5_000);
  }
  return entry.collab;
}

/** Keeps `collab` open until the returned function is called. */
export function retain(collab: Collab): () => void {
  const key = [...open.entries()].find(([, e]) => e.collab === collab)?.[0];
  const entry = key === undefined ? undefined : open.get(key);
  if (!entry || key === undefined) return () => {};
  entry.users++;
  clearTimeout(entry.timer);
  return () => {
    entry.users--;
    if (entry.users === 0) closeLater(key, 1_000);
  };
}

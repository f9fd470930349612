// Who is on a document and whether this browser's changes are saved: shown the same way by
// every kind's editor.
import { useMemo, useSyncExternalStore } from 'react';
import { useStore } from 'zustand';
import type { Collab, Peer, SaveState } from './collab';

const saveWords: Record<SaveState, string> = {
  loading: 'Loading…',
  saved: 'Saved',
  saving: 'Saving…',
  offline: 'Offline — changes kept on this device',
  ended: 'Not connected',
};

export function SaveBadge({ collab }: { collab: Collab }) {
  const save = useStore(collab.status, (s) => s.save);
  return (
    <span className={`save-state save-${save}`} role="status" aria-live="polite" data-state={save}>
      {saveWords[save]}
    </span>
  );
}

/** The people on this document now (one entry per person, however many tabs). */
export function usePeers(collab: Collab): Peer[] {
  const awareness = collab.provider.awareness;
  const snapshot = useSyncExternalStore(
    (notify) => {
      awareness.on('change', notify);
      return () => awareness.off('change', notify);
    },
    () => awarenessKey(awareness.getStates()),
  );
  return useMemo(() => {
    void snapshot;
    const byUser = new Map<string, Peer>();
    awareness.getStates().forEach((state, clientId) => {
      const u = state.user as { id?: string; name?: string; color?: string } | undefined;
      if (!u?.id) return;
      const activity = state.activity as { type?: string } | undefined;
      const peer: Peer = {
        clientId,
        id: u.id,
        name: u.name ?? 'Someone',
        color: u.color ?? '#888',
        section: state.section as string | undefined,
        editing: activity?.type === 'editing',
        away: state.away === true,
      };
      if (clientId === awareness.clientID || !byUser.has(u.id)) byUser.set(u.id, peer);
    });
    return [...byUser.values()].sort((a, b) => (a.clientId === awareness.clientID ? -1 : b.clientId === awareness.clientID ? 1 : a.name.localeCompare(b.name)));
  }, [snapshot, awareness]);
}

function awarenessKey(states: Map<number, Record<string, unknown>>): string {
  const parts: string[] = [];
  states.forEach((s, id) => {
    const u = s.user as { id?: string; name?: string } | undefined;
    const activity = s.activity as { type?: string } | undefined;
    parts.push(`${id}:${u?.id}:${u?.name}:${s.section ?? ''}:${activity?.type ?? ''}:${s.away === true}`);
  });
  return parts.sort().join('|');
}

export function Presence({ collab }: { collab: Collab }) {
  const peers = usePeers(collab);
  const me = collab.provider.awareness.clientID;
  return (
    <ul className="presence" aria-label="People on this document">
      {peers.map((p) => {
        const where = p.away
          ? 'away'
          : p.section
            ? `${p.editing ? 'editing' : 'in'} “${p.section}”`
            : p.editing
              ? 'editing'
              : 'here';
        const label = p.clientId === me ? `${p.name} (you)` : `${p.name}, ${where}`;
        return (
          <li key={p.id} title={label} aria-label={label} className={`presence-person${p.away ? ' away' : ''}`} style={{ background: p.color }}>
            {initials(p.name)}
          </li>
        );
      })}
    </ul>
  );
}

export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return ((words[0]?.[0] ?? '?') + (words.length > 1 ? (words[words.length - 1]?.[0] ?? '') : '')).toUpperCase();
}


// The document's latest AI draft, shared by the document page (which opens the draft panel
// while a draft is being written or waits for approval) and the panel itself.
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';

export function useLatestDraft(ws: string, docId: string, enabled = true) {
  return useQuery({
    queryKey: ['drafts', docId],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/contexts', { params: { query: { workspace: ws, document: docId, type: 'prd', limit: 1 } } }),
      ),
    enabled,
  });
}

/** The providers the workspace uses (its text provider drafts and rewrites). */
export function useWorkspaceAi(ws: string) {
  return useQuery({
    queryKey: ['workspace-ai', ws],
    queryFn: () => unwrap(api.GET('/api/v1/workspaces/{ws}/ai', { params: { path: { ws } } })),
    staleTime: 60_000,
  });
}

const dismissedKey = (contextId: string) => `quire-draft-closed-${contextId}`;

/** Whether this browser closed the panel on this draft (it then stays closed until asked for). */
export function isDismissed(contextId: string): boolean {
  try {
    return localStorage.getItem(dismissedKey(contextId)) !== null;
  } catch {
    return false;
  }
}

export function dismiss(contextId: string) {
  try {
    localStorage.setItem(dismissedKey(contextId), '1');
  } catch {
    // Private browsing without storage: the panel just opens again next time.
  }
}

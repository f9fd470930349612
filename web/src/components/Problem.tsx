import { Link } from 'react-router';
import { ApiError } from '../api/client';

/** An error from a query, said the way a person understands it. */
export function Problem({ error, retry }: { error: unknown; retry?: () => void }) {
  const status = error instanceof ApiError ? error.status : 0;
  const title =
    status === 404
      ? 'Not found'
      : status === 403
        ? 'You do not have access'
        : status === 0
          ? 'Quire could not be reached'
          : 'Something went wrong';
  const message =
    status === 404
      ? 'It may have been deleted, or the link is wrong.'
      : status === 403
        ? 'Ask an admin of this workspace to invite you or change your role.'
        : error instanceof Error
          ? error.message
          : String(error);
  return (
    <div className="problem" role="alert">
      <h2>{title}</h2>
      <p>{message}</p>
      <div className="row">
        {retry && status !== 404 && status !== 403 && (
          <button onClick={retry} className="secondary">
            Try again
          </button>
        )}
        <Link to="/">Go to your workspaces</Link>
      </div>
    </div>
  );
}

/** A failed action's message, said where the action is; nothing when it did not fail. */
export function ErrorText({ error }: { error: Error | null }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {error.message}
    </p>
  );
}

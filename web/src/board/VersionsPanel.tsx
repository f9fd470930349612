// The images an item showed before it was replaced, newest first, each restorable; restoring
// keeps the image shown now as a version in its turn.
import { BoardImage } from './ItemView';
import type { Item } from './model';

const when = (iso: string | undefined) => {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
};

export function VersionsPanel({
  ws,
  item,
  onRestore,
  onClose,
}: {
  ws: string;
  item: Item;
  onRestore: (index: number) => void;
  onClose: () => void;
}) {
  const versions = (item.versions ?? []).map((v, index) => ({ v, index })).reverse();
  return (
    <div className="board-ui board-about board-versions" role="dialog" aria-label="Versions of this image">
      <div className="panel-head">
        <h2>Versions</h2>
        <button className="icon" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
      <ol className="version-list">
        {item.asset && (
          <li aria-current="true">
            <BoardImage ws={ws} sha={item.asset} pixels={96} alt="The image shown now" />
            <div>
              <strong>Shown now</strong>
            </div>
          </li>
        )}
        {versions.map(({ v, index }) => (
          <li key={`${v.asset}-${index}`}>
            <BoardImage ws={ws} sha={v.asset} pixels={96} alt={`Earlier image ${index + 1}`} />
            <div>
              <span className="small-text">
                Replaced {when(v.replaced_at)}
                {v.by ? ` by ${v.by}` : ''}
              </span>
              {typeof v.source?.prompt === 'string' && <span className="muted small-text">Generated</span>}
              <button className="secondary" onClick={() => onRestore(index)}>
                Restore
              </button>
            </div>
          </li>
        ))}
      </ol>
    </div>
  );
}

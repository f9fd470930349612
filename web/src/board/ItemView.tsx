import { memo, useEffect, useRef, useState } from 'react';
import { assetUrl, fallbackOf, variantFor, type Variant } from './assets';
import { hostOf } from './export';
import { placeholderText } from './generate';
import type { Generation, Item, ItemChange } from './model';
import { MAX_TEXT, settled } from './model';

const order: Variant[] = ['small', 'large', 'original'];

/** What a screen reader says of an item. */
export function describe(item: Item): string {
  switch (item.type) {
    case 'image':
      if (item.generation) return `Image being generated: ${placeholderText(item.generation)}`;
      return `Image${item.caption ? `: ${item.caption}` : ''}`;
    case 'note':
      return `Note: ${(item.text ?? '').slice(0, 80) || 'empty'}`;
    case 'swatch':
      return `Colour ${item.color ?? ''}`;
    case 'link':
      return `Link to ${hostOf(item.url ?? '')}`;
  }
}

/** The image file for `pixels` screen pixels: never a smaller one than already shown, and the
 * next larger while a thumbnail is still being made. */
export function BoardImage({ ws, sha, pixels, alt }: { ws: string; sha: string; pixels: number; alt: string }) {
  const wanted = variantFor(pixels);
  const [variant, setVariant] = useState<Variant>(wanted);
  const shown = order.indexOf(wanted) > order.indexOf(variant) ? wanted : variant;
  const [failed, setFailed] = useState(false);
  return failed ? (
    <div className="board-image-missing">Image not available</div>
  ) : (
    <img
      src={assetUrl(ws, sha, shown)}
      alt={alt}
      draggable={false}
      onError={() => {
        const next = fallbackOf(shown);
        if (next) setVariant(next);
        else setFailed(true);
      }}
    />
  );
}

/** A generation's placeholder: its progress while it paints, the reason once it gave up. */
function Placeholder({ g, onRemove }: { g: Generation; onRemove?: () => void }) {
  const over = settled(g);
  return (
    <div className={`board-placeholder status-${g.status}`} role="status">
      <span className="placeholder-text">{placeholderText(g)}</span>
      {g.status === 'painting' && (
        <span className="placeholder-bar" aria-hidden>
          <span style={{ width: `${Math.round(g.progress * 100)}%` }} />
        </span>
      )}
      {g.reason && g.status !== 'painting' && <span className="placeholder-reason">{g.reason}</span>}
      {over && onRemove && (
        <button className="secondary small" onPointerDown={(e) => e.stopPropagation()} onClick={onRemove}>
          Remove
        </button>
      )}
    </div>
  );
}

/** One item on the board, drawn in the plane's units; re-drawn only when it changed. */
export const ItemView = memo(function ItemView({
  item,
  ws,
  zoom,
  selected,
  editing,
  onChange,
  onDone,
  onRemove,
}: {
  item: Item;
  ws: string;
  zoom: number;
  selected: boolean;
  /** Being edited in place: a note's text, an image's caption, a link, a colour. */
  editing: boolean;
  onChange: (id: string, change: ItemChange) => void;
  onDone: () => void;
  /** Removes an item (a placeholder's own button); absent for those who only view. */
  onRemove?: (id: string) => void;
}) {
  const style = {
    transform: `translate(${item.x}px, ${item.y}px)${item.rotation ? ` rotate(${item.rotation}deg)` : ''}`,
    width: item.w,
    height: item.h,
    zIndex: item.z,
    ...(item.type === 'note' && item.color ? { background: item.color } : {}),
  };
  const pixels = item.w * zoom * (window.devicePixelRatio || 1);
  return (
    <div
      className={`board-item type-${item.type}${selected ? ' selected' : ''}`}
      data-id={item.id}
      style={style}
      role="group"
      aria-label={describe(item)}
      aria-selected={selected}
    >
      {item.type === 'image' &&
        (item.generation ? (
          <Placeholder g={item.generation} onRemove={onRemove && (() => onRemove(item.id))} />
        ) : item.asset ? (
          <BoardImage ws={ws} sha={item.asset} pixels={pixels} alt={item.caption ?? ''} />
        ) : (
          <div className="board-image-missing">No image</div>
        ))}
      {item.type === 'note' &&
        (editing ? (
          <Editable
            value={item.text ?? ''}
            label="Note text"
            multiline
            onChange={(text) => onChange(item.id, { text })}
            onDone={onDone}
          />
        ) : (
          <div className="note-text">
            {item.text || <span className="muted">Double-click to write</span>}
          </div>
        ))}
      {item.type === 'swatch' && (
        <div className="swatch" style={{ background: item.color ?? '#cccccc' }}>
          {editing ? (
            <span className="swatch-edit">
              <input
                type="color"
                aria-label="Colour"
                value={item.color ?? '#cccccc'}
                onChange={(e) => onChange(item.id, { color: e.target.value })}
              />
              <Editable
                value={item.color ?? ''}
                label="Colour code"
                onChange={(v) => /^#[0-9a-fA-F]{6}$/.test(v) && onChange(item.id, { color: v.toLowerCase() })}
                onDone={onDone}
              />
            </span>
          ) : (
            <span className="swatch-code">{(item.color ?? '').toUpperCase()}</span>
          )}
        </div>
      )}
      {item.type === 'link' && (
        <div className="link-card">
          <span className="link-host">{hostOf(item.url ?? '')}</span>
          {editing ? (
            <Editable value={item.url ?? ''} label="Link address" onChange={(url) => onChange(item.id, { url })} onDone={onDone} />
          ) : (
            <>
              <span className="link-title">{item.caption || item.url}</span>
              {item.url && /^https?:\/\//.test(item.url) && (
                <a className="link-open" href={item.url} target="_blank" rel="noopener noreferrer" onPointerDown={(e) => e.stopPropagation()}>
                  Open ↗
                </a>
              )}
            </>
          )}
        </div>
      )}
      {item.type !== 'link' && item.type !== 'note' && (editing && item.type === 'image' ? (
        <div className="board-caption">
          <Editable value={item.caption ?? ''} label="Caption" onChange={(caption) => onChange(item.id, { caption: caption || undefined })} onDone={onDone} />
        </div>
      ) : (
        item.caption && <div className="board-caption">{item.caption}</div>
      ))}
    </div>
  );
});

/** A field edited in place: every change is written as it is typed (others see it live);
 * Enter (without Shift, in a note) or Escape ends the editing. */
function Editable({
  value,
  label,
  multiline = false,
  onChange,
  onDone,
}: {
  value: string;
  label: string;
  multiline?: boolean;
  onChange: (v: string) => void;
  onDone: () => void;
}) {
  // Typed text is the field's own until it is valid and written; others' changes come in.
  const [text, setText] = useState(value);
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  useEffect(() => {
    ref.current?.focus();
    ref.current?.select();
  }, []);
  const common = {
    ref,
    'aria-label': label,
    value: text,
    maxLength: MAX_TEXT,
    onPointerDown: (e: React.PointerEvent) => e.stopPropagation(),
    onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => {
      setText(e.target.value);
      onChange(e.target.value);
    },
    onBlur: onDone,
    onKeyDown: (e: React.KeyboardEvent) => {
      e.stopPropagation();
      // A note takes Enter as a new line; Ctrl+Enter (⌘ on a Mac) ends it.
      if (e.key === 'Escape' || (e.key === 'Enter' && (!multiline || e.metaKey || e.ctrlKey))) onDone();
    },
  };
  return multiline ? <textarea className="board-edit" {...common} /> : <input className="board-edit" {...common} />;
}

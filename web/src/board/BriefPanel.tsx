// The board's brief: the room and the style it is for (from Quire's taxonomy), its palette
// and notes. Shared like everything on the board: what one person picks, all see.
import { useState, useSyncExternalStore } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { MAX_REFERENCES, type BoardModel } from './model';
import { BoardImage } from './ItemView';
import { MAX_COUNT, SHAPES, type GenerationRequest, type Shape } from './generate';

interface Entry {
  key: string;
  name: string;
  palette?: string[];
}

function useTaxonomy(path: '/api/v1/taxonomy/room-types' | '/api/v1/taxonomy/design-styles') {
  return useQuery({
    queryKey: ['taxonomy', path],
    queryFn: async () => ((await unwrap(api.GET(path))) as { items: Entry[] }).items,
    staleTime: Infinity,
  });
}

const MAX_PALETTE = 32;

/** Painting images from the brief: how many and what shape; the room and the style are needed. */
function Generate({ ready, onGenerate }: { ready: boolean; onGenerate: (req: GenerationRequest) => Promise<void> }) {
  const [count, setCount] = useState(4);
  const [shape, setShape] = useState<Shape>('square');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <fieldset className="generate">
      <legend>Generate images</legend>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          onGenerate({ count, shape })
            .catch((err: unknown) => setError(err instanceof Error ? err.message : String(err)))
            .finally(() => setBusy(false));
        }}
      >
        <div className="row">
          <label>
            Images
            <select value={count} onChange={(e) => setCount(Number(e.target.value))}>
              {Array.from({ length: MAX_COUNT }, (_, n) => n + 1).map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <label>
            Shape
            <select value={shape} onChange={(e) => setShape(e.target.value as Shape)}>
              {Object.entries(SHAPES).map(([key, s]) => (
                <option key={key} value={key}>
                  {s.label}
                </option>
              ))}
            </select>
          </label>
        </div>
        <button type="submit" className="primary" disabled={!ready || busy}>
          {busy ? 'Starting…' : 'Generate'}
        </button>
        {!ready && <p className="muted small-text">Pick a room and a style to generate images.</p>}
        {error && (
          <p className="error small-text" role="alert">
            {error}
          </p>
        )}
      </form>
    </fieldset>
  );
}

/** The images generations from the brief start from, in turn: added from the image selected
 * on the board. */
function References({ ws, model, canEdit, current, selected }: { ws: string; model: BoardModel; canEdit: boolean; current: string[]; selected?: string }) {
  const canAdd = canEdit && !!selected && !current.includes(selected) && current.length < MAX_REFERENCES;
  return (
    <fieldset className="reference">
      <legend>Reference images</legend>
      {current.length > 0 ? (
        <>
          <ul className="reference-list" aria-label="References">
            {current.map((sha, n) => (
              <li key={sha}>
                <BoardImage ws={ws} sha={sha} pixels={96} alt={`Reference ${n + 1}`} />
                {canEdit && (
                  <button className="icon" aria-label={`Remove reference ${n + 1}`} onClick={() => model.setBrief({ references: current.filter((s) => s !== sha) })}>
                    ×
                  </button>
                )}
              </li>
            ))}
          </ul>
          <span className="muted small-text">Generated images start from these in turn and keep their layout.</span>
        </>
      ) : (
        !canAdd && <p className="muted small-text">None. Select an image on the board to paint from it.</p>
      )}
      {canAdd && (
        <button className="secondary small" onClick={() => model.setBrief({ references: [...current, selected!] })}>
          Add the selected image
        </button>
      )}
    </fieldset>
  );
}

export function BriefPanel({
  ws,
  model,
  canEdit,
  selectedImage,
  onGenerate,
  onClose,
}: {
  ws: string;
  model: BoardModel;
  canEdit: boolean;
  /** The asset of the one image selected on the board, if that is what is selected. */
  selectedImage?: string;
  onGenerate: (req: GenerationRequest) => Promise<void>;
  onClose: () => void;
}) {
  const brief = useSyncExternalStore(model.subscribe, () => model.brief());
  const rooms = useTaxonomy('/api/v1/taxonomy/room-types');
  const styles = useTaxonomy('/api/v1/taxonomy/design-styles');
  const [colour, setColour] = useState('#c8b6a6');
  const palette = brief.palette ?? [];
  const style = styles.data?.find((s) => s.key === brief.style);
  return (
    <aside className="brief-panel" aria-label="Brief">
      <div className="panel-head">
        <h2>Brief</h2>
        <button className="icon" aria-label="Close the brief" onClick={onClose}>
          ×
        </button>
      </div>
      <label>
        Room
        <select value={brief.room_type ?? ''} disabled={!canEdit} onChange={(e) => model.setBrief({ room_type: e.target.value })}>
          <option value="">Any room</option>
          {rooms.data?.map((r) => (
            <option key={r.key} value={r.key}>
              {r.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Style
        <select value={brief.style ?? ''} disabled={!canEdit} onChange={(e) => model.setBrief({ style: e.target.value })}>
          <option value="">Any style</option>
          {styles.data?.map((s) => (
            <option key={s.key} value={s.key}>
              {s.name}
            </option>
          ))}
        </select>
      </label>
      {style?.palette && canEdit && palette.length === 0 && (
        <button className="secondary small" onClick={() => model.setBrief({ palette: [...style.palette!] })}>
          Use the {style.name} palette
        </button>
      )}
      <fieldset>
        <legend>Palette</legend>
        <ul className="palette" aria-label="Palette">
          {palette.map((c, n) => (
            <li key={`${c}${n}`}>
              <span className="palette-chip" style={{ background: c }} />
              <code>{c.toUpperCase()}</code>
              {canEdit && (
                <button className="icon" aria-label={`Remove ${c} from the palette`} onClick={() => model.setBrief({ palette: palette.filter((_, k) => k !== n) })}>
                  ×
                </button>
              )}
            </li>
          ))}
          {palette.length === 0 && <li className="muted small-text">No colours yet.</li>}
        </ul>
        {canEdit && palette.length < MAX_PALETTE && (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              if (!palette.includes(colour)) model.setBrief({ palette: [...palette, colour] });
            }}
          >
            <input type="color" aria-label="Colour to add" value={colour} onChange={(e) => setColour(e.target.value)} />
            <button type="submit" className="secondary small">
              Add colour
            </button>
          </form>
        )}
      </fieldset>
      <label>
        Notes
        <textarea
          rows={5}
          maxLength={10_000}
          readOnly={!canEdit}
          placeholder="What the room is for, what to keep, what to avoid…"
          value={brief.notes ?? ''}
          onChange={(e) => model.setBrief({ notes: e.target.value })}
        />
      </label>
      <References ws={ws} model={model} canEdit={canEdit} current={brief.references ?? []} selected={selectedImage} />
      {canEdit && <Generate ready={!!brief.room_type && !!brief.style} onGenerate={onGenerate} />}
    </aside>
  );
}

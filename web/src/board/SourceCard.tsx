// How a generated image was made, as its `source` records it: the prompt, the provider and
// model, the seed, the size asked for, the time it took, and what quality control did.
const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);

/** How close to its image a painting from one was asked to stay. */
function closeness(strength: number | undefined): string {
  if (typeof strength !== 'number') return 'strength unknown';
  const how = strength <= 0.4 ? 'kept close' : strength <= 0.7 ? 'loosely' : 'only as a start';
  return `${how} (strength ${strength})`;
}

export function SourceCard({ source, onClose }: { source: Record<string, unknown>; onClose: () => void }) {
  const params = (source.parameters ?? {}) as Record<string, unknown>;
  const qc = (source.qc ?? {}) as { round?: number; rejected_before?: { reason?: string }[] };
  const earlier = qc.rejected_before ?? [];
  const from = source.from_image as { strength?: number } | undefined;
  const palette = Array.isArray(source.palette) ? source.palette.filter((c): c is string => typeof c === 'string') : [];
  const rows: [string, string | undefined][] = [
    ['Provider', [text(source.provider), text(source.model)].filter(Boolean).join(' · ')],
    ['Painted', from ? `From an image on the board, ${closeness(from.strength)}` : undefined],
    ['Size', params.width && params.height ? `${text(params.width)} × ${text(params.height)}` : undefined],
    ['Seed', text(source.seed)],
    ['Time', typeof source.elapsed_ms === 'number' ? `${(source.elapsed_ms / 1000).toFixed(1)} s` : undefined],
    ['Quality control', qc.round ? (qc.round === 1 ? 'Passed on the first try' : `Passed on try ${qc.round}`) : undefined],
  ];
  return (
    <div className="board-ui board-about" role="dialog" aria-label="About this image">
      <div className="panel-head">
        <h2>About this image</h2>
        <button className="icon" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
      <p className="about-prompt">{text(source.prompt)}</p>
      {text(source.negative_prompt) && <p className="muted small-text">Avoiding: {text(source.negative_prompt)}</p>}
      <dl>
        {rows
          .filter(([, v]) => v)
          .map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
      </dl>
      {palette.length > 0 && (
        <div className="about-palette" role="list" aria-label="Palette it was painted in">
          {palette.map((c) => (
            <span key={c} role="listitem" className="swatch-dot" style={{ background: c }} title={c} />
          ))}
        </div>
      )}
      {earlier.length > 0 && (
        <details>
          <summary>{earlier.length === 1 ? '1 earlier image was refused' : `${earlier.length} earlier images were refused`}</summary>
          <ul>
            {earlier.map((r, n) => (
              <li key={n}>{r.reason}</li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

// Generation onto the board: the request the brief panel and "More like this" send. The
// server (`board_images`) places the placeholders, paints, checks every image and fills them
// in; the canvas sees all of it through the board itself.
import { api, unwrap } from '../api/client';
import type { Item } from './model';

/** The shapes offered, as the model's pixels (multiples of 8). */
export const SHAPES = {
  square: { label: 'Square', width: 512, height: 512 },
  landscape: { label: 'Landscape', width: 768, height: 512 },
  portrait: { label: 'Portrait', width: 512, height: 768 },
} as const;
export type Shape = keyof typeof SHAPES;

/** The most images one generation paints (the server's limit). */
export const MAX_COUNT = 8;

export interface GenerationRequest {
  count: number;
  shape: Shape;
  /** "More like this": the item whose prompt (and image) is painted again. */
  like?: string;
  /** Paint from the liked item's image (where the provider can; the server's default). */
  fromImage?: boolean;
  /** How far an image painted from another may stray from it, 0.05 to 1. */
  strength?: number;
}

/** The ways of painting "more like this" an image. */
export const VARIATIONS = {
  close: {
    label: 'Close variations',
    hint: 'Keep its layout and colours',
    request: { fromImage: true, strength: 0.35 },
  },
  loose: {
    label: 'Looser variations',
    hint: 'Start from it, take more liberties',
    request: { fromImage: true, strength: 0.65 },
  },
  prompt: {
    label: 'New takes on its prompt',
    hint: 'Paint its description anew',
    request: { fromImage: false },
  },
} as const satisfies Record<string, { label: string; hint: string; request: Partial<GenerationRequest> }>;
export type Variation = keyof typeof VARIATIONS;

/** The variations an item offers: from its image when it has one, from its prompt when it
 * was generated. */
export function variations(item: Pick<Item, 'type' | 'asset' | 'source'>): Variation[] {
  if (item.type !== 'image') return [];
  const out: Variation[] = [];
  if (item.asset) out.push('close', 'loose');
  if (typeof item.source?.prompt === 'string') out.push('prompt');
  return out;
}

/** The shape nearest an item's (for "More like this"). */
export function shapeOf(item: Pick<Item, 'w' | 'h'>): Shape {
  const ratio = item.w / item.h;
  return ratio > 1.2 ? 'landscape' : ratio < 0.83 ? 'portrait' : 'square';
}

/** Submits a generation; answers the context's id (its placeholders carry it). */
export async function generate(ws: string, documentId: string, req: GenerationRequest): Promise<string> {
  const { width, height } = SHAPES[req.shape];
  const ctx = await unwrap(
    api.POST('/api/v1/contexts', {
      body: {
        workspace: ws,
        type: 'moodboard.images',
        pipeline: ['board_images'],
        idempotency_key: crypto.randomUUID(),
        data: {
          document_id: documentId,
          count: req.count,
          width,
          height,
          ...(req.like ? { like: req.like } : {}),
          ...(req.fromImage !== undefined ? { from_image: req.fromImage } : {}),
          ...(req.strength !== undefined ? { strength: req.strength } : {}),
        } as never,
      },
    }),
  );
  return ctx.id;
}

/** What a placeholder says of itself. */
export function placeholderText(g: NonNullable<Item['generation']>): string {
  switch (g.status) {
    case 'queued':
      return 'Waiting to paint…';
    case 'painting':
      return `Painting ${Math.round(g.progress * 100)}%${g.round && g.round > 1 ? ` (try ${g.round})` : ''}`;
    case 'retrying':
      return `Painting again (try ${g.round ?? 2})`;
    case 'waiting':
      return 'The image service is busy; trying again shortly';
    case 'rejected':
      return 'Rejected by quality control';
    case 'failed':
      return 'Generation failed';
    case 'stopped':
      return 'Generation stopped';
  }
}

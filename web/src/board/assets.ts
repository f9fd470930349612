// Images on a board: uploading them to the workspace's assets, and the address of the file
// that suits the size an image is drawn at.
import { api, ApiError, unwrap, type Schemas } from '../api/client';

export type AssetView = Schemas['AssetView'];

/** The image types Quire keeps (it reads the type from the bytes; this only spares a trip). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];

/** Uploads one image; the error says what was wrong with it, by name. */
export async function uploadImage(ws: string, file: File): Promise<AssetView> {
  if (file.type === 'image/svg+xml') {
    throw new ApiError(415, 'unsupported_media_type', `${file.name}: SVG images are not accepted. Export it as PNG first.`);
  }
  try {
    return await unwrap(
      api.POST('/api/v1/workspaces/{ws}/assets', {
        params: { path: { ws }, query: { name: file.name } },
        // The file's bytes as they are.
        body: file as unknown as number[],
        bodySerializer: (body: unknown) => body as BodyInit,
        headers: { 'Content-Type': 'application/octet-stream' },
      }),
    );
  } catch (e) {
    if (e instanceof ApiError) throw new ApiError(e.status, e.code, `${file.name}: ${e.message}`, e.field);
    throw e;
  }
}

export type Variant = 'small' | 'large' | 'original';

/** The smallest file that is sharp at `pixels` screen pixels wide. */
export function variantFor(pixels: number): Variant {
  return pixels <= 320 ? 'small' : pixels <= 1280 ? 'large' : 'original';
}

/** The next file to try when one is not there (thumbnails follow an upload by moments). */
export function fallbackOf(v: Variant): Variant | null {
  return v === 'small' ? 'large' : v === 'large' ? 'original' : null;
}

export function assetUrl(ws: string, sha: string, variant: Variant): string {
  return `/api/v1/workspaces/${encodeURIComponent(ws)}/assets/${sha}/${variant}`;
}

/** An image's size on the board: its own, at most `max` on its longer side. */
export function placedSize(width: number, height: number, max = 320): { w: number; h: number } {
  const s = Math.min(1, max / Math.max(width, height, 1));
  return { w: Math.round(width * s), h: Math.round(height * s) };
}

import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, readCookie, refreshSession, retryDelay, sentence, shouldRetry, unwrap } from './client';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('unwrap', () => {
  it('returns the data of a success', async () => {
    const response = new Response('{}', { status: 200 });
    await expect(unwrap(Promise.resolve({ data: { a: 1 }, response }))).resolves.toEqual({ a: 1 });
  });
  it("throws Quire's error with its status, code, field and message", async () => {
    const response = new Response('', { status: 422 });
    const error = { error: { code: 'invalid_request', message: 'title is too long', field: 'title' } };
    const thrown = await unwrap(Promise.resolve({ error, response })).catch((e) => e);
    expect(thrown).toBeInstanceOf(ApiError);
    expect(thrown).toMatchObject({ status: 422, code: 'invalid_request', field: 'title', message: 'Title is too long.' });
  });
  it('says so when Quire cannot be reached', async () => {
    const thrown = await unwrap(Promise.reject(new TypeError('Failed to fetch'))).catch((e) => e);
    expect(thrown).toMatchObject({ status: 0, code: 'network' });
    expect(thrown.message).toMatch(/could not be reached/);
  });
  it('names the status of an answer without a body', async () => {
    const response = new Response('', { status: 502 });
    const thrown = await unwrap(Promise.resolve({ error: 'x', response })).catch((e) => e);
    expect(thrown).toMatchObject({ status: 502 });
  });
});

describe('the session', () => {
  it('reads the CSRF cookie', () => {
    document.cookie = 'quire_csrf=abc123';
    expect(readCookie('quire_csrf')).toBe('abc123');
    expect(readCookie('quire_access')).toBeUndefined();
  });
  it('refreshes once for callers that ask together, with the CSRF token', async () => {
    document.cookie = 'quire_csrf=tok';
    const fetcher = vi.fn(async () => new Response(null, { status: 200 }));
    const [a, b] = await Promise.all([refreshSession(fetcher), refreshSession(fetcher)]);
    expect(a && b).toBe(true);
    expect(fetcher).toHaveBeenCalledTimes(1);
    const [url, init] = fetcher.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/api/v1/auth/refresh');
    expect((init.headers as Record<string, string>)['X-CSRF-Token']).toBe('tok');
  });
  it('reports a refresh that fails', async () => {
    const fetcher = vi.fn(async () => new Response(null, { status: 401 }));
    await expect(refreshSession(fetcher)).resolves.toBe(false);
  });
});

describe('sentence', () => {
  it('capitalises and ends a server message', () => {
    expect(sentence('an account with this email exists; sign in instead')).toBe('An account with this email exists; sign in instead.');
    expect(sentence('Done!')).toBe('Done!');
    expect(sentence('')).toBe('');
  });
});

describe('retries', () => {
  it('waits out a rate limit as the server says, then asks again', async () => {
    const response = new Response('', { status: 429, headers: { 'retry-after': '7' } });
    const error = { error: { code: 'rate_limited', message: 'rate limit of 300 requests reached; retry in 7 s' } };
    const thrown = (await unwrap(Promise.resolve({ error, response })).catch((e) => e)) as ApiError;
    expect(thrown.retryAfter).toBe(7);
    expect(shouldRetry(0, thrown)).toBe(true);
    expect(shouldRetry(3, thrown)).toBe(false);
    expect(retryDelay(0, thrown)).toBe(7000);
  });
  it('does not ask again what will not change', () => {
    expect(shouldRetry(0, new ApiError(404, 'not_found', 'x'))).toBe(false);
    expect(shouldRetry(0, new ApiError(403, 'forbidden', 'x'))).toBe(false);
    expect(shouldRetry(0, new ApiError(502, 'upstream', 'x'))).toBe(true);
    expect(shouldRetry(0, new ApiError(0, 'network', 'x'))).toBe(true);
    expect(retryDelay(1, new ApiError(502, 'upstream', 'x'))).toBe(2000);
  });
});

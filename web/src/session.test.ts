import { describe, expect, it } from 'vitest';
import { safeNext } from './session';
import { ago, until } from './screens/Documents';

describe('safeNext', () => {
  it('keeps paths of this app', () => {
    expect(safeNext('/w/acme?kind=prd')).toBe('/w/acme?kind=prd');
  });
  it('refuses other origins and odd paths', () => {
    for (const bad of ['//evil.example', '/\\evil.example', 'https://evil.example', 'w/acme', '', null]) {
      expect(safeNext(bad)).toBe('/');
    }
  });
});

describe('ago', () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  it('says how long ago in words', () => {
    expect(ago('2026-12-03T11:59:50Z', now)).toBe('just now');
    expect(ago('2026-12-03T11:59:00Z', now)).toBe('1 minute ago');
    expect(ago('2026-12-03T11:15:00Z', now)).toBe('45 minutes ago');
    expect(ago('2026-12-03T09:00:00Z', now)).toBe('3 hours ago');
    expect(ago('2026-12-01T12:00:00Z', now)).toBe('2 days ago');
  });
  it('gives the date beyond a week', () => {
    expect(ago('2026-10-01T12:00:00Z', now)).toMatch(/2026/);
  });
});

describe('until', () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  it('says how long until a time to come', () => {
    expect(until('2026-12-10T12:00:00Z', now)).toBe('in 7 days');
    expect(until('2026-12-03T17:00:00Z', now)).toBe('in 5 hours');
    expect(until('2026-12-03T12:01:00Z', now)).toBe('in 1 minute');
    expect(until('2026-12-03T11:00:00Z', now)).toBe('now');
  });
});

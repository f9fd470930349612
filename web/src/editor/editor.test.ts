import { describe, expect, it } from 'vitest';
import { colorFor, socketBase } from '../collab/collab';
import { initials } from '../collab/Presence';

describe('presence', () => {
  it('gives each person the same colour everywhere', () => {
    expect(colorFor('usr_01A')).toBe(colorFor('usr_01A'));
    const colours = new Set(['usr_1', 'usr_2', 'usr_3', 'usr_4', 'usr_5', 'usr_6'].map(colorFor));
    expect(colours.size).toBeGreaterThan(2);
    expect(colorFor('usr_1')).toMatch(/^#[0-9a-f]{6}$/);
  });
  it('shows initials of the first and last name', () => {
    expect(initials('Ada Lovelace')).toBe('AL');
    expect(initials('grace')).toBe('G');
    expect(initials('Jean Baptiste Joseph Fourier')).toBe('JF');
    expect(initials('  ')).toBe('?');
  });
});

describe('the socket', () => {
  it("is on the page's own origin, secure when the page is", () => {
    expect(socketBase({ protocol: 'http:', host: '127.0.0.1:7420' } as Location)).toBe('ws://127.0.0.1:7420/collab');
    expect(socketBase({ protocol: 'https:', host: 'quire.example.com' } as Location)).toBe('wss://quire.example.com/collab');
  });
});

import { describe, expect, it } from 'vitest';
import { emptyView, fold, type ContextEvent } from './stream';

const ev = (seq: number, kind: string, data: Record<string, unknown>): ContextEvent => ({ seq, kind, data });

describe('a draft from its events', () => {
  it('grows the text chunk by chunk, counting characters as the server does', () => {
    let v = emptyView();
    v = fold(v, ev(1, 'status', { status: 'processing', attempt: 1 }));
    v = fold(v, ev(2, 'chunk', { offset: 0, text: '# Café ' }));
    v = fold(v, ev(3, 'progress', { percent: 10, message: "writing 'Problem'" }));
    v = fold(v, ev(4, 'chunk', { offset: 7, text: '😀 done' }));
    expect(v.text).toBe('# Café 😀 done');
    expect(v.chars).toBe(13);
    expect(v.status).toBe('processing');
    expect(v.message).toBe("writing 'Problem'");
    expect(v.seq).toBe(4);
  });

  it('takes each event once, however often it is replayed', () => {
    let v = emptyView();
    v = fold(v, ev(1, 'chunk', { offset: 0, text: 'ab' }));
    v = fold(v, ev(2, 'chunk', { offset: 2, text: 'cd' }));
    v = fold(v, ev(2, 'chunk', { offset: 2, text: 'cd' }));
    v = fold(v, ev(1, 'chunk', { offset: 0, text: 'ab' }));
    expect(v.text).toBe('abcd');
  });

  it('starts again with a new attempt, and keeps the reason the last one failed', () => {
    let v = emptyView();
    v = fold(v, ev(1, 'chunk', { offset: 0, text: 'first try' }));
    v = fold(v, ev(2, 'status', { status: 'retrying', attempt: 1, error: { code: 'quality_gate_failed', message: 'too short' } }));
    expect(v.error).toBe('too short');
    v = fold(v, ev(3, 'status', { status: 'processing', attempt: 2 }));
    expect(v.error).toBeUndefined();
    v = fold(v, ev(4, 'chunk', { offset: 0, text: 'second' }));
    expect(v.text).toBe('second');
    expect(v.attempt).toBe(2);
  });

  it('ends complete at 100 %, or failed with the reason', () => {
    const done = fold(emptyView(), ev(1, 'status', { status: 'completed' }));
    expect([done.status, done.percent]).toEqual(['completed', 100]);
    const failed = fold(emptyView(), ev(1, 'status', { status: 'failed', error: { message: 'no provider' } }));
    expect([failed.status, failed.error]).toEqual(['failed', 'no provider']);
  });

  it('does not splice in a chunk past the end', () => {
    let v = fold(emptyView(), ev(1, 'chunk', { offset: 0, text: 'ab' }));
    v = fold(v, ev(3, 'chunk', { offset: 5, text: 'zz' }));
    expect(v.text).toBe('ab');
  });
});

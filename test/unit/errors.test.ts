import { describe, expect, it } from 'vitest';
import { StepVideoError, formatMessage, isStepVideoError, throwIfAborted } from '../../lib/errors.js';

describe('StepVideoError', () => {
  it('formats what, expected, got, tensor and file in one shape', () => {
    const error = new StepVideoError('ERR_SHAPE', 'wrong shape', {
      expected: [2, 3],
      got: [3, 2],
      tensor: 'x',
      file: 'a.safetensors',
    });
    expect(error.message).toBe("wrong shape: expected [2, 3], got [3, 2] (tensor 'x', file 'a.safetensors')");
    expect(error.code).toBe('ERR_SHAPE');
    expect(error.tensor).toBe('x');
    expect(isStepVideoError(error, 'ERR_SHAPE')).toBe(true);
    expect(isStepVideoError(error, 'ERR_DTYPE')).toBe(false);
  });

  it('omits absent parts', () => {
    expect(formatMessage('plain')).toBe('plain');
    expect(formatMessage('only got', { got: 'x' })).toBe('only got: got x');
  });

  it('throwIfAborted raises ERR_ABORTED with the reason as cause', () => {
    const controller = new AbortController();
    expect(() => throwIfAborted(controller.signal)).not.toThrow();
    controller.abort(new Error('stop'));
    try {
      throwIfAborted(controller.signal, 'sampling');
      expect.unreachable();
    } catch (error) {
      expect(isStepVideoError(error, 'ERR_ABORTED')).toBe(true);
      expect((error as Error).message).toBe('sampling aborted');
      expect(((error as Error).cause as Error).message).toBe('stop');
    }
  });
});

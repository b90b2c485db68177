import { describe, expect, test } from 'vitest'
import { createBoundedLabeler, createModelLabeler, STOP_REASONS } from './model-label.js'

describe('createModelLabeler', () => {
  test('the first `max` well-formed ids keep their name, later new ones are other, in any order of repeats', () => {
    const label = createModelLabeler(3)
    expect(label(undefined)).toBe('none')
    expect(label('claude-a')).toBe('claude-a')
    expect(label('claude-a')).toBe('claude-a')
    expect(label('not a model!')).toBe('other')
    expect(label('not a model!')).toBe('other')
    expect(label('claude-a')).toBe('claude-a')
    expect(label('claude-b')).toBe('claude-b')
    expect(label('claude-c')).toBe('claude-c')
    expect(label('claude-d')).toBe('other')
    expect(label('claude-d')).toBe('other')
    // Names seen before the limit keep theirs, whatever came just before.
    for (const name of ['claude-b', 'claude-a', 'claude-d', 'claude-c', 'claude-c', 'claude-e']) {
      expect(label(name)).toBe(name === 'claude-d' || name === 'claude-e' ? 'other' : name)
    }
    expect(label(undefined)).toBe('none')
    expect(label('claude-a')).toBe('claude-a')
  })

  test('a new string with the same text as the last model gets the same label', () => {
    const label = createModelLabeler()
    const first = JSON.parse('"claude-sonnet-4-5"') as string
    const again = JSON.parse('"claude-sonnet-4-5"') as string
    expect(label(first)).toBe('claude-sonnet-4-5')
    expect(label(again)).toBe('claude-sonnet-4-5')
  })
})

describe('createBoundedLabeler', () => {
  test('values of the set keep their name, anything else is other, across repeats and changes', () => {
    const label = createBoundedLabeler(STOP_REASONS)
    const sequence = ['end_turn', 'end_turn', 'made_up', 'made_up', 'tool_use', 'end_turn', 'made_up', 'max_tokens']
    expect(sequence.map(label)).toEqual(['end_turn', 'end_turn', 'other', 'other', 'tool_use', 'end_turn', 'other', 'max_tokens'])
  })
})

// @ts-check
// The map of the mini-mud: five rooms around a town square.
//
//              Forest Path
//                   |
//   Tavern --- Town Square --- Market
//                   |
//                Harbour

/** @typedef {'north' | 'south' | 'east' | 'west'} Direction */

/**
 * @typedef {object} Room
 * @property {string} title
 * @property {string} description
 * @property {Partial<Record<Direction, string>>} exits  direction → room key
 */

/** Where new players start, and where a player whose room no longer exists is put. */
export const START = 'square';

/** @type {Readonly<Record<string, Room>>} */
export const ROOMS = {
  square: {
    title: 'Town Square',
    description: 'Cobbles worn smooth by centuries of boots surround a dry fountain. A road climbs north into the trees, stalls crowd the east side, gulls cry to the south, and a tavern sign creaks to the west.',
    exits: { north: 'forest', east: 'market', south: 'harbour', west: 'tavern' },
  },
  forest: {
    title: 'Forest Path',
    description: 'Tall pines close over a mossy path. Somewhere an owl is awake far too early. The town lies back to the south.',
    exits: { south: 'square' },
  },
  market: {
    title: 'Market',
    description: 'Stalls of apples, rope, lanterns and suspicious potions. A fishmonger shouts prices nobody believes. The square is west.',
    exits: { west: 'square' },
  },
  harbour: {
    title: 'Harbour',
    description: 'Fishing boats knock against the pier and nets dry in the wind. The square is north, up the steps.',
    exits: { north: 'square' },
  },
  tavern: {
    title: 'Tavern',
    description: 'The Sleeping Dragon: low beams, a fire, and a barkeep polishing the same mug forever. The door opens east onto the square.',
    exits: { east: 'square' },
  },
};

/** @type {Readonly<Record<string, Direction>>} */
export const DIRECTIONS = { n: 'north', north: 'north', s: 'south', south: 'south', e: 'east', east: 'east', w: 'west', west: 'west' };

/** @type {Readonly<Record<Direction, Direction>>} */
export const OPPOSITE = { north: 'south', south: 'north', east: 'west', west: 'east' };

/**
 * Text widths from the real font. Headless vega has no canvas to measure text, so it guesses
 * 0.8 em per character, which leaves legends and axis titles far too much room (or truncates
 * them). We read the advance widths of DejaVu Sans (regular and bold) from the TTF files — the
 * same files resvg draws with — and give vega exact widths instead.
 */
import fs from 'node:fs';
import * as vega from 'vega';

/** Advance widths of a TrueType font per code point, in em. */
export class FontMetrics {
  private readonly advance = new Map<number, number>();
  private readonly fallback: number;

  constructor(ttf: Buffer) {
    const tables = new Map<string, number>();
    const numTables = ttf.readUInt16BE(4);
    for (let i = 0; i < numTables; i++) {
      const rec = 12 + 16 * i;
      tables.set(ttf.toString('latin1', rec, rec + 4), ttf.readUInt32BE(rec + 8));
    }
    const need = (t: string) => {
      const at = tables.get(t);
      if (at === undefined) throw new Error(`font has no ${t} table`);
      return at;
    };
    const unitsPerEm = ttf.readUInt16BE(need('head') + 18);
    const numberOfHMetrics = ttf.readUInt16BE(need('hhea') + 34);
    const hmtx = need('hmtx');
    const glyphAdvance = (glyph: number) => ttf.readUInt16BE(hmtx + 4 * Math.min(glyph, numberOfHMetrics - 1)) / unitsPerEm;
    for (const [code, glyph] of cmapFormat4(ttf, need('cmap'))) this.advance.set(code, glyphAdvance(glyph));
    this.fallback = this.advance.get(0x6e) ?? 0.6; // 'n'
  }

  /** Width of a string in em (no kerning). */
  width(text: string): number {
    let w = 0;
    for (const ch of text) w += this.advance.get(ch.codePointAt(0)!) ?? this.fallback;
    return w;
  }
}

/** The (code point → glyph) pairs of the Unicode BMP subtable (platform 3/1 or 0/x, format 4). */
function cmapFormat4(ttf: Buffer, cmap: number): [number, number][] {
  const n = ttf.readUInt16BE(cmap + 2);
  let sub = -1;
  for (let i = 0; i < n && sub < 0; i++) {
    const rec = cmap + 4 + 8 * i;
    const [platform, encoding] = [ttf.readUInt16BE(rec), ttf.readUInt16BE(rec + 2)];
    const at = cmap + ttf.readUInt32BE(rec + 4);
    if ((platform === 3 && encoding === 1) || platform === 0) if (ttf.readUInt16BE(at) === 4) sub = at;
  }
  if (sub < 0) throw new Error('font has no format-4 cmap');
  const segX2 = ttf.readUInt16BE(sub + 6);
  const ends = sub + 14, starts = ends + segX2 + 2, deltas = starts + segX2, offsets = deltas + segX2;
  const out: [number, number][] = [];
  for (let s = 0; s < segX2; s += 2) {
    const [end, start] = [ttf.readUInt16BE(ends + s), ttf.readUInt16BE(starts + s)];
    const [delta, rangeOffset] = [ttf.readInt16BE(deltas + s), ttf.readUInt16BE(offsets + s)];
    for (let c = start; c <= end && c !== 0xffff; c++) {
      let glyph: number;
      if (rangeOffset === 0) glyph = (c + delta) & 0xffff;
      else {
        const g = ttf.readUInt16BE(offsets + s + rangeOffset + 2 * (c - start));
        glyph = g === 0 ? 0 : (g + delta) & 0xffff;
      }
      if (glyph) out.push([c, glyph]);
    }
  }
  return out;
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
  text?: unknown;
}

let installed = false;

/** Make vega measure text with the given regular and bold fonts (once per process). */
export function installTextMetrics(regularTtf: string, boldTtf: string): void {
  if (installed) return;
  const regular = new FontMetrics(fs.readFileSync(regularTtf));
  const bold = new FontMetrics(fs.readFileSync(boldTtf));
  const metrics = (vega as unknown as { textMetrics: { width: (item: TextItem, text?: unknown) => number } }).textMetrics;
  metrics.width = (item, text) => {
    const size = item.fontSize != null ? +item.fontSize || 0 : 11;
    const s = text == null ? '' : String(text).trim();
    const isBold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
    return (isBold ? bold : regular).width(s) * size;
  };
  installed = true;
}

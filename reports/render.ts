/**
 * Headless rendering: Vega-Lite spec → Vega spec (vega-lite) → SVG (a vega View with no
 * renderer, measuring text with the real font) → PNG at 2× (resvg, with the DejaVu fonts from the
 * package and no system fonts).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import { installTextMetrics } from './fontmetrics.js';
import { FONT, fontFiles } from './style.js';

export type VlSpec = Record<string, unknown>;

/** Compile a Vega-Lite spec; vega-lite's warnings are collected instead of printed. */
export function compileSpec(spec: VlSpec, warnings: string[] = []): vega.Spec {
  const logger = {
    level: () => logger,
    error: (...m: unknown[]) => { throw new Error(m.join(' ')); },
    warn: (...m: unknown[]) => { warnings.push(m.join(' ')); return logger; },
    info: () => logger,
    debug: () => logger,
  };
  return vl.compile(spec as unknown as vl.TopLevelSpec, { logger: logger as never }).spec;
}

let fonts: string[] | null = null;

/** The font files, and vega told to measure text with them. */
function useFonts(): string[] {
  fonts ??= fontFiles();
  installTextMetrics(fonts[0], fonts[1]);
  return fonts;
}

export async function renderSvg(spec: VlSpec): Promise<string> {
  useFonts();
  const view = new vega.View(vega.parse(compileSpec(spec)), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 2): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: false, fontFiles: useFonts(), defaultFontFamily: FONT, sansSerifFamily: FONT },
  });
  return resvg.render().asPng();
}

/** Write a file via a temporary name and a rename, so a reader never sees half of it. */
export function writeFileAtomic(file: string, content: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

/** Render a spec to `<base>.svg` and `<base>.png`; returns both paths. */
export async function writeFigureFiles(spec: VlSpec, base: string): Promise<{ svg: string; png: string }> {
  const svg = await renderSvg(spec);
  writeFileAtomic(`${base}.svg`, svg);
  writeFileAtomic(`${base}.png`, svgToPng(svg));
  return { svg: `${base}.svg`, png: `${base}.png` };
}

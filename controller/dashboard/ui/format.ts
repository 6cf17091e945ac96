// How numbers read on the dashboard: rates, bytes, durations and ages, short and in SI units.

export function rate(perSecond: number, unit = '/s'): string {
  if (!perSecond) return `0${unit}`;
  if (perSecond < 0.01) return `<0.01${unit}`;
  return `${perSecond < 10 ? perSecond.toFixed(2) : perSecond < 100 ? perSecond.toFixed(1) : Math.round(perSecond)}${unit}`;
}

export function bytes(n: number, suffix = ''): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}${suffix}`;
}

/** A span of seconds as people say it: 45 s, 12 min, 5 h, 3 d. Negative: "expired". */
export function span(seconds: number): string {
  if (seconds < 0) return `expired ${span(-seconds)} ago`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

export function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour12: false });
}

// Apache ECharts inside a Preact component: the chart is made once on mount, given each new
// option as it comes (ECharts merges and animates), resized with its box, and disposed on unmount.
// Only the series the dashboard draws are registered, so the bundle carries nothing else.

import { useEffect, useRef } from 'preact/hooks';
import * as echarts from 'echarts/core';
import { BarChart, GraphChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TitleComponent, TooltipComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

echarts.use([GraphChart, BarChart, GridComponent, LegendComponent, TitleComponent, TooltipComponent, SVGRenderer]);

export type ChartOption = echarts.EChartsCoreOption;

export function Chart(props: { option: ChartOption; height: number; label: string; testId?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | undefined>(undefined);
  useEffect(() => {
    // SVG, not canvas: crisp in screenshots, and the drawing is in the DOM.
    const c = echarts.init(box.current!, undefined, { renderer: 'svg' });
    chart.current = c;
    const resize = new ResizeObserver(() => c.resize());
    resize.observe(box.current!);
    return () => {
      resize.disconnect();
      c.dispose();
    };
  }, []);
  useEffect(() => {
    chart.current?.setOption(props.option, { notMerge: false, lazyUpdate: true });
  }, [props.option]);
  return <div ref={box} class="chart" style={{ height: `${props.height}px` }} role="img" aria-label={props.label} data-testid={props.testId} />;
}

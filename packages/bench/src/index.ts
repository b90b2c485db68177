export type { BenchSettings, CompareTarget, EmulatorKind, RunOptions, TestType } from './bench-options.js'
export type {
  BenchResult,
  CpuFigures,
  LatencyFigures,
  MachineFacts,
  MemoryFigures,
  PercentilePoint,
  RateWithinBound,
  ReuseFigures,
  StallFigures,
  StallLevel,
  TargetFigures,
  TargetInfo,
  TargetKind,
  ThroughputLevel,
  TimelinePhase,
  TimelineSample,
  TtfeFigures,
} from './bench-result.js'
export { DIRECT, PROXY } from './bench-result.js'
export { type CliArguments, parseCliArguments } from './cli-arguments.js'
export { type CpuIdleFacts, describeCpuIdle, readCpuIdle } from './cpu-idle.js'
export type { EmulatorControls, EmulatorDeltaUsage, EmulatorEncoding, EmulatorScenario } from './emulator/controls.js'
export { DEFAULT_CONTROLS, EMULATOR_CONTROL_HEADERS, emulatorControlHeaders } from './emulator/controls.js'
export type { Emulator, EmulatorOptions, EmulatorStats, RecordedRequest } from './emulator/emulator.js'
export { createEmulator } from './emulator/emulator.js'
export { createFastUpstream, type FastUpstream, type FastUpstreamOptions, type FastUpstreamStats } from './emulator/fast-upstream.js'
export type { EmulatedModel } from './emulator/models.js'
export { EMULATED_MODELS } from './emulator/models.js'
export {
  type Baseline,
  type BaselineFigure,
  type Better,
  compareWithBaseline,
  createBaseline,
  DEFAULT_TOLERANCES,
  figureKind,
  type GateFigure,
  type GateReport,
  type GateRow,
  type GateStatus,
  gateFigures,
  parseBaseline,
  sanityCheck,
  THROUGHPUT_REFERENCES,
  type Tolerance,
} from './gate.js'
export { renderHtmlReport } from './html-report.js'
export { evaluatePerformanceTargets, type PerformanceTarget } from './performance-targets.js'
export type { Pinning } from './pinning.js'
export { createProgressBar } from './progress-bar.js'
export type { ProgressEvent } from './progress-event.js'
export { REFERENCE_PRESETS, type ReferencePreset } from './references/reference-presets.js'
export { run } from './run.js'
export { formatGate, formatReport } from './terminal-report.js'

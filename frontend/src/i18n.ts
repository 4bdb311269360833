// UI strings in English (the reference set) and Chinese; a missing Chinese string falls back to
// English, a missing English one to its key, so the page never shows `undefined`.

const en = {
  'app.title': 'LAN Speech-to-Text',
  'app.short': 'LAN ASR',
  'nav.transcribe': 'Transcribe',
  'nav.history': 'History',
  'nav.system': 'System',
  'nav.live': 'Live',
  'live.heading': 'Live captions',
  'live.intro': 'Speak into the microphone: captions appear as you talk and are corrected at the end of each sentence. The session is saved to the history.',
  'live.start': 'Start',
  'live.stop': 'Stop',
  'live.start.title': 'Start the microphone and live captions',
  'live.stop.title': 'Stop and save the session',
  'live.state.idle': 'Ready',
  'live.state.connecting': 'Connecting…',
  'live.state.recording': 'Listening',
  'live.state.finishing': 'Finishing the last sentence…',
  'live.state.done': 'Saved',
  'live.state.error': 'Stopped',
  'live.level': 'Input level',
  'live.format': 'Microphone {rate} kHz → 16 kHz',
  'live.captions': 'Captions',
  'live.placeholder': 'Captions appear here while you speak.',
  'live.partial': 'still listening',
  'live.saved': 'The session was saved.',
  'live.open': 'Open saved session',
  'live.open.history': 'Open live sessions in the history',
  'live.copy': 'Copy text',
  'live.clear': 'Clear',
  'live.options': 'Options',
  'live.hotwords.placeholder': 'Names or terms, separated by spaces',
  'live.tip': 'Tip: a headset microphone gives the best captions.',
  'live.err.insecure': 'This browser allows the microphone only on secure pages. Open this page over HTTPS, or as http://localhost on the server itself. (Chrome can also trust this address: chrome://flags/#unsafely-treat-insecure-origin-as-secure.)',
  'live.err.unsupported': 'This browser cannot capture audio here (no AudioWorklet support). Use a current Chrome, Edge, Firefox or Safari.',
  'live.err.denied': 'Microphone access was denied. Allow the microphone for this site in the browser (the icon in the address bar), then start again.',
  'live.err.nomic': 'No microphone was found. Connect one and start again.',
  'live.err.busy': 'The microphone is in use by another application or could not be opened.',
  'live.err.no_live_worker': 'No worker is serving live sessions right now. Start a worker with the live queue, then try again.',
  'live.err.too_many_sessions': 'The server is handling as many live sessions as it allows. Try again in a moment.',
  'live.err.worker_lost': 'The worker transcribing this session stopped. The audio received so far is kept; captions continue when another worker takes over.',
  'live.err.closed': 'The connection to the server closed unexpectedly (code {code}). The audio sent so far is saved.',
  'live.err.connect': 'Cannot open a live connection to the server. Check that the gateway is running.',
  'live.err.timeout': 'The server did not send the last captions in time; the session is saved with what was received.',
  'hist.from': 'From',
  'hist.to': 'To',
  'hist.clearfilters': 'Clear filters',

  'nav.main': 'Main navigation',
  'lang.switch': '中文',
  'lang.switch.title': 'Switch the interface to Chinese',
  'conn.open': 'Connected',
  'conn.connecting': 'Connecting…',
  'conn.closed': 'Offline – polling',
  'conn.title': 'Live updates from the server (Server-Sent Events)',
  'auth.title': 'Access token',
  'auth.body': 'This server asks for an access token (ASR_API_TOKEN). Enter the token its administrator gave you.',
  'auth.wrong': 'The server did not accept the saved access token. Enter the current one.',
  'auth.placeholder': 'Access token',
  'auth.save': 'Save',
  'auth.cancel': 'Cancel',

  'status.queued': 'Queued',
  'status.processing': 'Processing',
  'status.done': 'Done',
  'status.failed': 'Failed',
  'status.canceled': 'Canceled',
  'status.uploading': 'Uploading',
  'status.error': 'Upload failed',
  'status.deleted': 'Deleted',
  'kind.file': 'File',
  'kind.live': 'Live',

  'tx.heading': 'Transcribe audio files',
  'tx.intro': 'Audio and video files of any common format. Several at once are fine.',
  'tx.drop': 'Drop audio files here',
  'tx.or': 'or',
  'tx.pick': 'Choose files',
  'tx.language': 'Language',
  'tx.lang.auto': 'Detect automatically',
  'tx.lang.zh': 'Chinese (Mandarin)',
  'tx.lang.en': 'English',
  'tx.hotwords': 'Hotwords',
  'tx.hotwords.placeholder': 'Names or terms, separated by spaces',
  'tx.uploads': 'This session',
  'tx.clear': 'Clear finished',
  'tx.empty': 'Nothing uploaded yet.',
  'tx.position': 'Position {position} in the queue',
  'tx.wait': 'about {wait}',
  'tx.uploaded': '{sent} of {total}',
  'tx.open': 'Open',
  'tx.cancel': 'Cancel',
  'tx.dismiss': 'Remove from list',
  'tx.notext': '(no speech recognised)',

  'hist.heading': 'History',
  'hist.search': 'Search text or filename',
  'hist.search.label': 'Search',
  'hist.status': 'Status',
  'hist.kind': 'Kind',
  'hist.any': 'Any',
  'hist.empty': 'No transcriptions match.',
  'hist.range': '{from}–{to} of {total}',
  'hist.prev': 'Previous',
  'hist.next': 'Next',
  'hist.col.file': 'File',
  'hist.col.created': 'Created',
  'hist.col.duration': 'Duration',
  'hist.col.model': 'Model',
  'hist.col.worker': 'Worker',
  'hist.col.status': 'Status',
  'hist.untitled': '(untitled)',
  'hist.pagesize': 'Per page',

  'detail.back': 'Back to history',
  'detail.segments': 'Segments',
  'detail.text': 'Text',
  'detail.export': 'Export',
  'detail.retry': 'Retry',
  'detail.cancel': 'Cancel',
  'detail.delete': 'Delete',
  'detail.delete.confirm': 'Delete this transcription and its audio for good?',
  'detail.delete.yes': 'Yes, delete',
  'detail.delete.no': 'Keep it',
  'detail.deleted': 'The transcription was deleted.',
  'detail.nosegments': 'No segments yet.',
  'detail.created': 'Created',
  'detail.started': 'Started',
  'detail.finished': 'Finished',
  'detail.duration': 'Duration',
  'detail.language': 'Language',
  'detail.model': 'Model',
  'detail.engine': 'Engine',
  'detail.worker': 'Worker',
  'detail.rtf': 'RTF',
  'detail.kind': 'Kind',
  'detail.error': 'Error',
  'detail.copy': 'Copy text',
  'detail.copied': 'Copied',
  'detail.audioerror': 'The audio could not be loaded.',

  'sys.heading': 'System',
  'sys.queue': 'Queue',
  'sys.workers': 'Workers',
  'sys.q.queued': 'Queued',
  'sys.q.processing': 'Processing',
  'sys.q.done': 'Done',
  'sys.q.failed': 'Failed',
  'sys.q.canceled': 'Canceled',
  'sys.q.workers': 'Active workers',
  'sys.q.busy': 'Busy workers',
  'sys.health': 'Health',
  'sys.health.ready': 'Ready',
  'sys.noworkers': 'No worker has registered yet. Start one with `make worker`.',
  'sys.col.worker': 'Worker',
  'sys.col.device': 'Device / engine',
  'sys.col.queues': 'Queues',
  'sys.col.models': 'Models',
  'sys.col.state': 'State',
  'sys.col.task': 'Current task',
  'sys.col.heartbeat': 'Last heartbeat',
  'sys.col.jobs': 'Jobs',
  'sys.inactive': 'inactive',
  'wstate.starting': 'Starting',
  'wstate.idle': 'Idle',
  'wstate.busy': 'Busy',
  'wstate.stopping': 'Stopping',
  'wstate.gone': 'Gone',
  'wstate.error': 'Error',

  'time.justnow': 'just now',
  'time.sec': '{n} s ago',
  'time.min': '{n} min ago',
  'time.hour': '{n} h ago',
  'time.day': '{n} d ago',

  'err.network': 'Cannot reach the server. Check that the gateway is running.',
  'err.http': 'The server answered {status}.',
  'err.badjson': 'The server sent a reply that is not valid JSON.',
  'err.aborted': 'The upload was aborted.',
  'err.notfound': 'Page not found.',
  'common.loading': 'Loading…',
  'common.retry': 'Try again',
  'common.dash': '—',
} as const;

export type MessageKey = keyof typeof en;
export type Dict = Partial<Record<MessageKey, string>>;
export type Lang = 'en' | 'zh';

const zh: Dict = {
  'app.title': '局域网语音转写',
  'app.short': '语音转写',
  'nav.transcribe': '转写',
  'nav.history': '历史记录',
  'nav.live': '实时',
  'live.heading': '实时字幕',
  'live.intro': '对着麦克风说话：字幕随说随出，每句结束时自动校正。会话会保存到历史记录。',
  'live.start': '开始',
  'live.stop': '停止',
  'live.start.title': '打开麦克风并开始实时字幕',
  'live.stop.title': '停止并保存会话',
  'live.state.idle': '就绪',
  'live.state.connecting': '正在连接…',
  'live.state.recording': '正在聆听',
  'live.state.finishing': '正在完成最后一句…',
  'live.state.done': '已保存',
  'live.state.error': '已停止',
  'live.level': '输入音量',
  'live.format': '麦克风 {rate} kHz → 16 kHz',
  'live.captions': '字幕',
  'live.placeholder': '说话时字幕会显示在这里。',
  'live.partial': '识别中',
  'live.saved': '会话已保存。',
  'live.open': '打开已保存的会话',
  'live.open.history': '在历史记录中查看实时会话',
  'live.copy': '复制文本',
  'live.clear': '清空',
  'live.options': '选项',
  'live.hotwords.placeholder': '人名或术语，用空格分隔',
  'live.tip': '提示：使用耳麦效果最好。',
  'live.err.insecure': '浏览器只允许在安全页面上使用麦克风。请通过 HTTPS 打开本页，或在服务器本机上用 http://localhost 打开。（也可在 Chrome 的 chrome://flags/#unsafely-treat-insecure-origin-as-secure 中信任此地址。）',
  'live.err.unsupported': '此浏览器无法在这里采集音频（不支持 AudioWorklet）。请使用新版 Chrome、Edge、Firefox 或 Safari。',
  'live.err.denied': '麦克风权限被拒绝。请在浏览器地址栏的图标中允许本站使用麦克风，然后重新开始。',
  'live.err.nomic': '没有找到麦克风。请连接麦克风后重新开始。',
  'live.err.busy': '麦克风被其他应用占用，或无法打开。',
  'live.err.no_live_worker': '目前没有处理实时会话的工作节点。请启动一个带 live 队列的工作节点后重试。',
  'live.err.too_many_sessions': '服务器的实时会话已达上限，请稍后再试。',
  'live.err.worker_lost': '处理本会话的工作节点已停止。已收到的音频会保留；其他节点接手后字幕会继续。',
  'live.err.closed': '与服务器的连接意外断开（代码 {code}）。已发送的音频已保存。',
  'live.err.connect': '无法与服务器建立实时连接。请确认网关正在运行。',
  'live.err.timeout': '服务器未能及时返回最后的字幕；会话已按收到的内容保存。',
  'hist.from': '起始日期',
  'hist.to': '结束日期',
  'hist.clearfilters': '清除筛选',

  'nav.system': '系统',
  'nav.main': '主导航',
  'lang.switch': 'English',
  'lang.switch.title': '将界面切换为英文',
  'conn.open': '已连接',
  'conn.connecting': '连接中…',
  'conn.closed': '离线 – 轮询中',
  'conn.title': '服务器实时推送（SSE）',
  'auth.title': '访问令牌',
  'auth.body': '此服务器需要访问令牌（ASR_API_TOKEN）。请输入管理员提供的令牌。',
  'auth.wrong': '服务器不接受已保存的访问令牌。请输入当前的令牌。',
  'auth.placeholder': '访问令牌',
  'auth.save': '保存',
  'auth.cancel': '取消',

  'status.queued': '排队中',
  'status.processing': '处理中',
  'status.done': '已完成',
  'status.failed': '失败',
  'status.canceled': '已取消',
  'status.uploading': '上传中',
  'status.error': '上传失败',
  'status.deleted': '已删除',
  'kind.file': '文件',
  'kind.live': '实时',

  'tx.heading': '转写音频文件',
  'tx.intro': '支持常见格式的音频和视频文件，可一次选择多个。',
  'tx.drop': '将音频文件拖放到这里',
  'tx.or': '或',
  'tx.pick': '选择文件',
  'tx.language': '语言',
  'tx.lang.auto': '自动检测',
  'tx.lang.zh': '中文（普通话）',
  'tx.lang.en': '英文',
  'tx.hotwords': '热词',
  'tx.hotwords.placeholder': '人名或术语，以空格分隔',
  'tx.uploads': '本次上传',
  'tx.clear': '清除已完成',
  'tx.empty': '尚未上传文件。',
  'tx.position': '队列第 {position} 位',
  'tx.wait': '约 {wait}',
  'tx.uploaded': '{sent} / {total}',
  'tx.open': '查看',
  'tx.cancel': '取消',
  'tx.dismiss': '从列表移除',
  'tx.notext': '（未识别到语音）',

  'hist.heading': '历史记录',
  'hist.search': '搜索文本或文件名',
  'hist.search.label': '搜索',
  'hist.status': '状态',
  'hist.kind': '类型',
  'hist.any': '全部',
  'hist.empty': '没有匹配的转写记录。',
  'hist.range': '第 {from}–{to} 条，共 {total} 条',
  'hist.prev': '上一页',
  'hist.next': '下一页',
  'hist.col.file': '文件',
  'hist.col.created': '创建时间',
  'hist.col.duration': '时长',
  'hist.col.model': '模型',
  'hist.col.worker': '工作节点',
  'hist.col.status': '状态',
  'hist.untitled': '（无标题）',
  'hist.pagesize': '每页',

  'detail.back': '返回历史记录',
  'detail.segments': '分段',
  'detail.text': '全文',
  'detail.export': '导出',
  'detail.retry': '重试',
  'detail.cancel': '取消',
  'detail.delete': '删除',
  'detail.delete.confirm': '确定永久删除这条转写记录及其音频吗？',
  'detail.delete.yes': '确定删除',
  'detail.delete.no': '保留',
  'detail.deleted': '转写记录已删除。',
  'detail.nosegments': '暂无分段。',
  'detail.created': '创建时间',
  'detail.started': '开始时间',
  'detail.finished': '完成时间',
  'detail.duration': '时长',
  'detail.language': '语言',
  'detail.model': '模型',
  'detail.engine': '引擎',
  'detail.worker': '工作节点',
  'detail.rtf': '实时率',
  'detail.kind': '类型',
  'detail.error': '错误',
  'detail.copy': '复制文本',
  'detail.copied': '已复制',
  'detail.audioerror': '无法加载音频。',

  'sys.heading': '系统',
  'sys.queue': '队列',
  'sys.workers': '工作节点',
  'sys.q.queued': '排队',
  'sys.q.processing': '处理中',
  'sys.q.done': '已完成',
  'sys.q.failed': '失败',
  'sys.q.canceled': '已取消',
  'sys.q.workers': '在线节点',
  'sys.q.busy': '忙碌节点',
  'sys.health': '健康状态',
  'sys.health.ready': '就绪',
  'sys.noworkers': '还没有工作节点注册。可用 `make worker` 启动一个。',
  'sys.col.worker': '节点',
  'sys.col.device': '设备 / 引擎',
  'sys.col.queues': '队列',
  'sys.col.models': '模型',
  'sys.col.state': '状态',
  'sys.col.task': '当前任务',
  'sys.col.heartbeat': '最近心跳',
  'sys.col.jobs': '任务数',
  'sys.inactive': '不活跃',
  'wstate.starting': '启动中',
  'wstate.idle': '空闲',
  'wstate.busy': '忙碌',
  'wstate.stopping': '停止中',
  'wstate.gone': '已离线',
  'wstate.error': '错误',

  'time.justnow': '刚刚',
  'time.sec': '{n} 秒前',
  'time.min': '{n} 分钟前',
  'time.hour': '{n} 小时前',
  'time.day': '{n} 天前',

  'err.network': '无法连接服务器，请确认网关正在运行。',
  'err.http': '服务器返回 {status}。',
  'err.badjson': '服务器返回的内容不是有效的 JSON。',
  'err.aborted': '上传已中止。',
  'err.notfound': '页面不存在。',
  'common.loading': '加载中…',
  'common.retry': '重试',
};

export const dictionaries: Record<Lang, Dict> = { en, zh };

export type Vars = Record<string, string | number>;

/** Replaces `{name}` placeholders; unknown placeholders are left as they are. */
export function interpolate(template: string, vars?: Vars): string {
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole,
  );
}

/** Builds a translator: the language's string, else English, else the key itself. */
export function createTranslator(dicts: Record<string, Dict>, lang: string) {
  return (key: string, vars?: Vars): string => {
    const s = dicts[lang]?.[key as MessageKey] ?? dicts.en?.[key as MessageKey] ?? key;
    return interpolate(s, vars);
  };
}

/** Chooses the UI language: a remembered choice wins, then the browser's language; English otherwise. */
export function detectLang(stored: string | null | undefined, navigatorLanguages: readonly string[]): Lang {
  if (stored === 'zh' || stored === 'en') return stored;
  for (const l of navigatorLanguages) {
    const low = (l || '').toLowerCase();
    if (low.startsWith('zh')) return 'zh';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

const STORAGE_KEY = 'lanasr.lang';

function readStored(): string | null {
  try {
    return globalThis.localStorage?.getItem(STORAGE_KEY) ?? null;
  } catch {
    return null;
  }
}

function navLanguages(): string[] {
  const nav = globalThis.navigator;
  if (!nav) return [];
  return nav.languages?.length ? [...nav.languages] : [nav.language];
}

let current: Lang = detectLang(readStored(), navLanguages());
let translate = createTranslator(dictionaries, current);

export function getLang(): Lang {
  return current;
}

export function setLang(lang: Lang): void {
  current = lang;
  translate = createTranslator(dictionaries, lang);
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, lang);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
  if (globalThis.document) document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
}

export function t(key: MessageKey, vars?: Vars): string {
  return translate(key, vars);
}

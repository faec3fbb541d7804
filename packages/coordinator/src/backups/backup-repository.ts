import { randomBytes } from 'node:crypto';
import type { pb } from '@virtfleet/shared';

/**
 * A backup id: lower-case letters, digits and "-", starting with a letter or
 * digit, at most 128 characters. It becomes a file name, so nothing that could
 * climb out of a directory (`/`, `.`) and no case that a case-insensitive share
 * would fold together.
 */
export const BACKUP_ID = /^[a-z0-9][a-z0-9-]{0,127}$/;

/** A new backup id, `bk-<UTC yyyymmddhhmmss>-<8 hex>`: sorts by time; 32 random bits keep two ids of one second apart. */
export function newBackupId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `bk-${stamp}-${randomBytes(4).toString('hex')}`;
}

/** One file of a backup, as the state stream carried it. */
export interface BackupFile {
  /** `disk:NAME` (a VM's disk) or `image` (a container's committed image). */
  role: string;
  size_bytes: number;
  /** Hex SHA-256 of the whole file. */
  sha256: string;
  /** Hex SHA-256 of each chunk, in order: every chunk is the repository's chunk size except the last, which is shorter or equal. */
  chunks: string[];
}

export interface BackupManifest {
  /** Chosen by the caller (see `newBackupId`); must match BACKUP_ID. */
  id: string;
  workload_id: string;
  workload_name: string;
  kind: 'vm' | 'container';
  /** The workload spec as JSON, stored as given. */
  spec: unknown;
  /** RFC 3339. */
  created_at: string;
  /** A full-state backup: the workload's memory is in it too. */
  memory: boolean;
  /** In the order the stream carried them. */
  files: BackupFile[];
  /** Sum of the files' sizes. */
  size_bytes: number;
  /** Bytes of chunks this backup added to the repository; the rest were there already. */
  stored_bytes: number;
}

/**
 * A backup as `list` answers it: the manifest without its chunk lists, which
 * take 67 bytes of JSON per 4 MiB of data (17 MB for a 1 TiB disk) and which
 * only the repository needs.
 */
export type BackupSummary = Omit<BackupManifest, 'files'> & { files: Omit<BackupFile, 'chunks'>[] };

/** What the caller says about a backup; the repository adds what the stream tells. */
export type BackupMeta = Omit<BackupManifest, 'files' | 'size_bytes' | 'stored_bytes'>;

export interface DamagedChunk {
  /** The file the chunk belongs to. */
  role: string;
  /** The chunk's place in that file, from 0. */
  index: number;
  sha256: string;
  /** `missing`: no chunk by that digest; `corrupt`: its bytes do not hash to its digest, or it is not as long as its place in the file says. */
  problem: 'missing' | 'corrupt';
}

export interface VerifyResult {
  /** No chunk is missing or damaged. */
  ok: boolean;
  /** Distinct chunks read (a chunk used at several places is read once). */
  checkedChunks: number;
  /** Every place of a missing or damaged chunk, in file and chunk order. */
  damaged: DamagedChunk[];
}

/**
 * The backups of one cluster: content-addressed chunks shared by every backup
 * that holds the same bytes, and one manifest per backup naming its chunks.
 * A backup exists exactly when its manifest does.
 *
 * Errors, on every method: INVALID_ARGUMENT for an id that does not match
 * BACKUP_ID (it never becomes a path); NOT_FOUND (`NotFoundError('backup', id)`)
 * for an id with no backup; DATA_LOSS for a backup whose manifest cannot be
 * read as one (such a manifest is reported, never trusted).
 */
export interface BackupRepository {
  /**
   * Stores a backup from a state stream: messages of `file {role, size_bytes}`,
   * then its bytes as `data`, then `file_end {sha256}`, for each file (what an
   * agent's ExportWorkloadState sends; no `header`). Every file's size and
   * SHA-256 are checked against the stream's; roles are `disk:NAME` or `image`,
   * each at most once; a stream of no files is no backup. Anything else is
   * INVALID_ARGUMENT naming the message and what is wrong; an error the stream
   * itself throws is passed on as it is.
   *
   * The manifest is written last, atomically, once every chunk is on disk: a
   * failed or interrupted write leaves no backup, and the chunks it wrote are
   * garbage for `sweep`. Writes may run at the same time as each other, `list`,
   * `get`, `verify` and `read`; `remove` and `sweep` wait for the writes under
   * way, so a write that never ends holds them off: give the stream a deadline.
   *
   * Not idempotent: ALREADY_EXISTS when a backup by `meta.id` exists or is
   * being written.
   */
  write(meta: BackupMeta, chunks: AsyncIterable<pb.WorkloadStateChunk__Output>): Promise<BackupManifest>;

  /**
   * Every backup, newest `created_at` first (ties by id, descending), or only
   * those of one workload name. A manifest that cannot be read is left out
   * (and logged), so one damaged file does not hide the others.
   */
  list(filter?: { workloadName?: string }): Promise<BackupSummary[]>;

  /** One backup's manifest. */
  get(id: string): Promise<BackupManifest>;

  /**
   * Removes the manifest, then every chunk of it that no other backup uses;
   * answers the bytes freed. A crash in between leaves those chunks to `sweep`.
   * Refuses with FAILED_PRECONDITION, removing nothing, while another manifest
   * cannot be read (its chunks are unknown, so none could be freed safely);
   * a backup whose own manifest cannot be read may be removed (its chunks are
   * then left to `sweep`). Not idempotent: NOT_FOUND once removed.
   */
  remove(id: string): Promise<{ freedBytes: number }>;

  /**
   * Reads every chunk of the backup and checks its length and digest; answers
   * which are missing or damaged, by file role and chunk index. Does not repair.
   * NOT_FOUND if the backup is removed while it is being verified.
   */
  verify(id: string): Promise<VerifyResult>;

  /**
   * The backup's files as a state stream, in their stored order: `file`, its
   * bytes as `data` of at most 1 MiB, and `file_end` with the file's SHA-256
   * (no `header`: a caller importing it into an agent sends its own first).
   * Every chunk is checked whole before any of its bytes are yielded: a
   * missing or damaged chunk ends the stream with DATA_LOSS, never with wrong
   * bytes; the bytes already yielded of that file are to be discarded. The
   * manifest is read at the first `next()`, so NOT_FOUND arrives there; a
   * backup removed while it is being read ends the stream with NOT_FOUND.
   */
  read(id: string): AsyncIterable<pb.WorkloadStateChunk>;

  /**
   * Removes chunks no manifest uses (left by interrupted writes or removes)
   * and leftover temporary files; answers the bytes freed. Refuses with
   * FAILED_PRECONDITION, removing nothing, while a manifest cannot be read.
   * Idempotent.
   */
  sweep(): Promise<{ freedBytes: number }>;
}

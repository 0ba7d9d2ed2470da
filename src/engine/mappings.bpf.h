// SPDX-License-Identifier: MIT
// mappings.bpf.h (included by engine.bpf.c): the executable file mappings a traced process makes,
// so that the loader can attach to an instrumented library the process maps after the engine
// started (mappings.cpp). At the end of a successful mmap(2) of a traced process, the new
// mapping's file, range and time go into the ring buffer if it is executable; the loader reads
// the file through /proc/PID/map_files, never by a path the target named.

#define ENGINE_VM_EXEC 0x4 // VM_EXEC of <linux/mm.h>

struct inode {
    unsigned long i_ino;
    struct super_block *i_sb;
} __attribute__((preserve_access_index));
struct super_block {
    unsigned int s_dev;
} __attribute__((preserve_access_index));
struct file {
    struct inode *f_inode;
} __attribute__((preserve_access_index));
struct vm_area_struct {
    unsigned long vm_start;
    unsigned long vm_end;
    unsigned long vm_flags;
    struct file *vm_file;
} __attribute__((preserve_access_index));

// The fields of the syscalls/sys_exit_* tracepoints (events/syscalls/sys_exit_mmap/format).
struct engine_sys_exit {
    uint64_t common; // type, flags, preempt count, pid
    int32_t syscall_nr;
    long ret; // at offset 16
};

static long found_mapping(struct task_struct *task, struct vm_area_struct *vma,
                          struct engine_map_record *record)
{
    struct file *file = BPF_CORE_READ(vma, vm_file);
    if (!file || !(BPF_CORE_READ(vma, vm_flags) & ENGINE_VM_EXEC))
        return 0;
    record->start = BPF_CORE_READ(vma, vm_start);
    record->end = BPF_CORE_READ(vma, vm_end);
    record->inode = BPF_CORE_READ(file, f_inode, i_ino);
    record->device = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int on_mmap(struct engine_sys_exit *ctx)
{
    if (ctx->ret < 0 && ctx->ret > -4096)
        return 0; // failed: nothing mapped
    uint32_t pid = current_pid();
    if (!bpf_map_lookup_elem(&traced, &pid))
        return 0;
    struct engine_map_record found = {};
    struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
    if (bpf_find_vma(task, (uint64_t)ctx->ret, found_mapping, &found, 0) != 0 || !found.inode)
        return 0; // anonymous, not executable, or unmapped already by another thread
    struct engine_map_record *record = bpf_ringbuf_reserve(&records, sizeof(*record), 0);
    if (!record) {
        count(COUNTER_RECORDS_LOST);
        return 0;
    }
    *record = found;
    record->kind = RECORD_MAP;
    record->pid = pid;
    record->time_ns = bpf_ktime_get_ns();
    bpf_ringbuf_submit(record, 0);
    return 0;
}

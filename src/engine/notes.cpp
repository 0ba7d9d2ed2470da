// SPDX-License-Identifier: MIT
#include "notes.hpp"

#include <cerrno>  // errno
#include <cstring> // std::strerror, std::memchr, std::strcmp, std::memcpy

#include <fcntl.h>  // open
#include <gelf.h>   // libelf: elf_begin, gelf_getnote
#include <unistd.h> // close

#include "error.hpp"

namespace engine {

namespace {

constexpr unsigned stapsdt_note_type = 3; // NT_STAPSDT

uint64_t address_at(const char *bytes, size_t address_bytes)
{
    if (address_bytes == 4) {
        uint32_t address;
        std::memcpy(&address, bytes, sizeof address);
        return address;
    }
    uint64_t address;
    std::memcpy(&address, bytes, sizeof address);
    return address;
}

// A pymemtrace probe of one stapsdt note's description: three addresses (pc, base, semaphore),
// then "provider\0name\0arguments\0". Its semaphore is moved by as much as the .stapsdt.base
// section was (a prelinked file), as libbpf does.
struct NoteProbe {
    std::string name;
    uint64_t base = 0;
    uint64_t semaphore = 0;
};

void add_probe(const char *desc, size_t size, size_t address_bytes, std::vector<NoteProbe> &found)
{
    const size_t at = 3 * address_bytes;
    if (size <= at)
        return;
    const char *provider = desc + at;
    const char *end = desc + size;
    const char *provider_end = static_cast<const char *>(std::memchr(provider, 0, end - provider));
    if (provider_end == nullptr)
        return;
    const char *name = provider_end + 1;
    const char *name_end = static_cast<const char *>(std::memchr(name, 0, end - name));
    if (name_end == nullptr || std::strcmp(provider, "pymemtrace") != 0)
        return;
    found.push_back({std::string(name, name_end), address_at(desc + address_bytes, address_bytes),
                     address_at(desc + 2 * address_bytes, address_bytes)});
}

// The file offset of `address` through the loadable segment that holds it; false when none does.
bool file_offset_of(Elf *elf, uint64_t address, uint64_t &offset)
{
    size_t count = 0;
    if (elf_getphdrnum(elf, &count) != 0)
        return false;
    for (size_t i = 0; i < count; ++i) {
        GElf_Phdr segment;
        if (gelf_getphdr(elf, static_cast<int>(i), &segment) == nullptr
            || segment.p_type != PT_LOAD)
            continue;
        if (address >= segment.p_vaddr && address < segment.p_vaddr + segment.p_filesz) {
            offset = address - segment.p_vaddr + segment.p_offset;
            return true;
        }
    }
    return false;
}

} // namespace

std::vector<ProbeSite> pymemtrace_sites(const std::string &path)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        throw Error("libelf is unusable here (elf_version failed): reinstall libelf1");
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw Error("cannot open library " + path + ": " + std::strerror(errno)
                    + ": give the path of a built, readable extension");
    Elf *elf = elf_begin(fd, ELF_C_READ, nullptr);
    if (elf == nullptr || elf_kind(elf) != ELF_K_ELF) {
        if (elf != nullptr)
            elf_end(elf);
        close(fd);
        throw Error(path + " is not an ELF shared library: give the path of a built extension");
    }
    const size_t address_bytes = gelf_getclass(elf) == ELFCLASS32 ? 4 : 8;
    std::vector<NoteProbe> found;
    uint64_t base_section = 0; // the address of .stapsdt.base, 0: none
    size_t names_index = 0;
    elf_getshdrstrndx(elf, &names_index);
    for (Elf_Scn *section = elf_nextscn(elf, nullptr); section != nullptr;
         section = elf_nextscn(elf, section)) {
        GElf_Shdr header;
        if (gelf_getshdr(section, &header) == nullptr)
            continue;
        const char *name = elf_strptr(elf, names_index, header.sh_name);
        if (name != nullptr && std::strcmp(name, ".stapsdt.base") == 0)
            base_section = header.sh_addr;
        if (header.sh_type != SHT_NOTE || name == nullptr
            || std::strcmp(name, ".note.stapsdt") != 0)
            continue;
        Elf_Data *data = elf_getdata(section, nullptr);
        if (data == nullptr)
            continue;
        GElf_Nhdr note;
        size_t name_at = 0, desc_at = 0;
        for (size_t offset = 0;
             (offset = gelf_getnote(data, offset, &note, &name_at, &desc_at)) > 0;) {
            if (note.n_type != stapsdt_note_type)
                continue;
            add_probe(static_cast<const char *>(data->d_buf) + desc_at, note.n_descsz,
                      address_bytes, found);
        }
    }
    std::vector<ProbeSite> sites;
    for (const auto &probe : found) {
        uint64_t semaphore = probe.semaphore;
        if (semaphore != 0 && probe.base != 0 && base_section != 0)
            semaphore += base_section - probe.base;
        uint64_t offset = 0;
        if (semaphore == 0 || !file_offset_of(elf, semaphore, offset))
            offset = 0;
        sites.push_back({probe.name, offset});
    }
    elf_end(elf);
    close(fd);
    return sites;
}


} // namespace engine

// SPDX-License-Identifier: MIT
#include "notes.hpp"

#include <cerrno>  // errno
#include <cstring> // std::strerror, std::memchr, std::strcmp

#include <fcntl.h>  // open
#include <gelf.h>   // libelf: elf_begin, gelf_getnote
#include <unistd.h> // close

#include "error.hpp"

namespace engine {

namespace {

constexpr unsigned stapsdt_note_type = 3; // NT_STAPSDT

// The provider and name of one stapsdt note's description: three addresses (pc, base,
// semaphore), then "provider\0name\0arguments\0".
void add_probe(const char *desc, size_t size, size_t address_bytes, std::set<std::string> &found)
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
    found.emplace(name, name_end);
}

} // namespace

std::set<std::string> pymemtrace_probes(const std::string &path)
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
    std::set<std::string> found;
    size_t names_index = 0;
    elf_getshdrstrndx(elf, &names_index);
    for (Elf_Scn *section = elf_nextscn(elf, nullptr); section != nullptr;
         section = elf_nextscn(elf, section)) {
        GElf_Shdr header;
        if (gelf_getshdr(section, &header) == nullptr || header.sh_type != SHT_NOTE)
            continue;
        const char *name = elf_strptr(elf, names_index, header.sh_name);
        if (name == nullptr || std::strcmp(name, ".note.stapsdt") != 0)
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
    elf_end(elf);
    close(fd);
    return found;
}

} // namespace engine

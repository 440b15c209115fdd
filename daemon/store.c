#include "daemon/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/dlog.h"

#define STORE_MAX_FILE (16u << 20)

static char vms_dir[PATH_MAX - 80];

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int store_init(const char *state_dir, struct chv_err *err)
{
	if (snprintf(vms_dir, sizeof(vms_dir), "%s/vms", state_dir) >= (int)sizeof(vms_dir))
		return chv_err_set(err, -ENAMETOOLONG, "--state-dir: %s is too long", state_dir);
	int r = mkdir_p(vms_dir, 0700);
	if (r < 0)
		return chv_err_set(err, r, "--state-dir: cannot create %s: %s", vms_dir,
				   strerror(-r));
	return 0;
}

int store_save(const Chv__V1__VmInfo *info)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.pb", vms_dir, info->id);
	snprintf(tmp, sizeof(tmp), "%s/.%s.pb.tmp", vms_dir, info->id);
	size_t n = chv__v1__vm_info__get_packed_size(info);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	chv__v1__vm_info__pack(info, buf);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = 0;
	if (fd < 0) {
		r = -errno;
	} else {
		if (write(fd, buf, n) != (ssize_t)n || fsync(fd) < 0)
			r = errno ? -errno : -EIO;
		close(fd);
		if (r == 0 && rename(tmp, path) < 0)
			r = -errno;
		if (r < 0)
			unlink(tmp);
	}
	free(buf);
	if (r < 0)
		dlog(DLOG_ERR, info->id, "cannot save its definition to %s: %s", path,
		     strerror(-r));
	return r;
}

int store_remove(const char *id)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.pb", vms_dir, id);
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static Chv__V1__VmInfo *load_one(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	Chv__V1__VmInfo *info = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= STORE_MAX_FILE) {
		uint8_t *buf = malloc((size_t)st.st_size);
		if (buf && read(fd, buf, (size_t)st.st_size) == st.st_size)
			info = chv__v1__vm_info__unpack(NULL, (size_t)st.st_size, buf);
		free(buf);
	}
	close(fd);
	return info;
}

int store_load_all(void (*fn)(void *ctx, Chv__V1__VmInfo *info), void *ctx)
{
	DIR *d = opendir(vms_dir);
	if (!d)
		return -errno;
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".pb"))
			continue;
		char path[PATH_MAX + 256];
		snprintf(path, sizeof(path), "%s/%s", vms_dir, e->d_name);
		Chv__V1__VmInfo *info = load_one(path);
		if (!info || !info->id[0] || strncmp(info->id, e->d_name, len - 3) ||
		    strlen(info->id) != len - 3) {
			dlog(DLOG_WARNING, NULL, "skipping unreadable VM definition %s", path);
			if (info)
				chv__v1__vm_info__free_unpacked(info, NULL);
			continue;
		}
		fn(ctx, info);
		count++;
	}
	closedir(d);
	return count;
}

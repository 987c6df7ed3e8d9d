/*
 * ipc_listen.cu — the server's socket file and the lock that tells a live
 * server from a dead one.
 *
 * The lock is `path` + ".lock", held with flock for the server's whole life:
 * the kernel lets go of it when the process ends however it ends, SIGKILL
 * included. So a server that gets the lock knows that any socket file at
 * `path` is a dead server's and may replace it; one that does not get it
 * knows another server lives. The lock file itself stays: removing it while
 * held would let two servers lock two different files of the same name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc.h"

/* The pid a live server wrote into its lock file, or 0. */
static long lock_holder(int lock_fd) {
    char text[32] = {0};
    ssize_t n = pread(lock_fd, text, sizeof text - 1, 0);
    if (n <= 0) return 0;
    long pid = strtol(text, NULL, 10);
    return pid > 0 ? pid : 0;
}

/* Takes the lock beside `path`; GV_ERR_IN_USE when another process holds it. */
static int take_lock(gv_ipc_server *server, const char *path) {
    char lock_path[sizeof server->path + 8];
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: opening the lock file %s", lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        long holder = lock_holder(fd);
        close(fd);
        if (err == EWOULDBLOCK) {
            if (holder > 0)
                return gv_fail(GV_ERR_IN_USE, "gv_ipc_listen: another server (pid %ld) listens at %s (it holds %s)", holder, path, lock_path);
            return gv_fail(GV_ERR_IN_USE, "gv_ipc_listen: another server listens at %s (it holds %s)", path, lock_path);
        }
        return gv_fail_os(err, GV_ERR_SOCKET, "gv_ipc_listen: locking %s", lock_path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* The pid only makes a later server's message clearer: failing to write it is no failure. */
    if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, pid, (size_t)n, 0);
    server->lock_fd = fd;
    return GV_OK;
}

/* A socket file at `path` is a dead server's (the caller holds the lock): removed. Anything else stays. */
static int remove_dead_socket(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? GV_OK : gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: lstat of %s", path);
    if (!S_ISSOCK(st.st_mode))
        return gv_fail_os(EEXIST, GV_ERR_SOCKET, "gv_ipc_listen: %s is in the way and is not a socket", path);
    if (unlink(path) != 0 && errno != ENOENT) return gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: removing the dead server's %s", path);
    return GV_OK;
}

int ipc_bind(gv_ipc_server *server, const char *path) {
    if (strlen(path) >= sizeof server->path)
        return gv_fail_os(ENAMETOOLONG, GV_ERR_SOCKET, "gv_ipc_listen: the socket path %s is %zu bytes; a Unix socket path holds at most %zu",
                          path, strlen(path), sizeof server->path - 1);
    int rc = take_lock(server, path);
    if (rc == GV_OK) rc = remove_dead_socket(path);
    int sock = rc == GV_OK ? socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (rc == GV_OK && sock < 0) rc = gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: socket()");
    if (rc == GV_OK) {
        struct sockaddr_un addr = {};
        addr.sun_family = AF_UNIX;
        memcpy(addr.sun_path, path, strlen(path));
        if (bind(sock, (struct sockaddr *)&addr, sizeof addr) != 0) rc = gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: bind to %s", path);
        else {
            snprintf(server->path, sizeof server->path, "%s", path);
            struct stat st;
            if (stat(path, &st) == 0) server->socket_dev = st.st_dev, server->socket_ino = st.st_ino;
            /* The folder's mode keeps others out already (the caller checks it); this is the second wall. */
            if (chmod(path, 0600) != 0) rc = gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: chmod 0600 of %s", path);
            else if (listen(sock, SOMAXCONN) != 0) rc = gv_fail_os(errno, GV_ERR_SOCKET, "gv_ipc_listen: listen on %s", path);
        }
    }
    server->listener = sock;
    if (rc != GV_OK) ipc_unbind(server);
    return rc;
}

void ipc_unbind(gv_ipc_server *server) {
    if (server->listener >= 0) close(server->listener);
    server->listener = -1;
    struct stat st;
    if (server->path[0] != '\0' && stat(server->path, &st) == 0 && st.st_dev == server->socket_dev && st.st_ino == server->socket_ino)
        unlink(server->path);
    server->path[0] = '\0';
    if (server->lock_fd >= 0) close(server->lock_fd); /* releases the lock */
    server->lock_fd = -1;
}

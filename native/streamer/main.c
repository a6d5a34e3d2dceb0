/*
 * tsm-streamer capture DIR | serve DIR
 *
 * The two ends of CRIU's image-streamer protocol (criu --stream): capture.c
 * takes the images of `criu dump --stream` and writes them to stdout as image
 * records; serve.c hands `criu restore --stream` the image files of DIR while
 * they are still arriving. See each file.
 */
#include "common.h"
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int capture_main(const char *dir);
int serve_main(const char *dir);

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* tsmigrate gone (killed mid-move): nobody will tell us more, or read what we write */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        die("started without a parent");
    if (argc == 3 && !strcmp(argv[1], "capture"))
        return capture_main(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "serve"))
        return serve_main(argv[2]);
    die("usage: tsm-streamer capture DIR | tsm-streamer serve DIR");
}

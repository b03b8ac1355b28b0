/* commands.h - one entry point per subcommand; argv[0] is the command name. */
#ifndef DV_COMMANDS_H
#define DV_COMMANDS_H

int dv_cmd_run(int argc, char **argv);
int dv_cmd_info(int argc, char **argv);
/* `diverge info` on a dump file (info_dump.c); returns the exit status. */
int dv_info_dump(const char *path);
int dv_cmd_fixture(int argc, char **argv);
int dv_cmd_import_llama2c(int argc, char **argv);
int dv_cmd_compare(int argc, char **argv);
int dv_cmd_logits(int argc, char **argv);
int dv_cmd_bisect(int argc, char **argv);

#endif

/*-------------------------------------------------------------------------
 *
 * pg_kappa.c
 *	  Module entry point: the extension's magic block and _PG_init.
 *
 * The output plugin's entry point (_PG_output_plugin_init) lives in
 * output_plugin.c; this file only loads the parts that need to exist when
 * the library is loaded into a backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
}
